from simtrain.common.logs import log_to

# First, so the imports' own messages (TensorFlow's) land in the log too.
log_to(snakemake.log[0])

from pathlib import Path

from simtrain.reporting.artifacts import plot_run_dir

plot_run_dir(
    Path(snakemake.input.diagnostics).parent,
    curves=snakemake.output.curves,
    batches=snakemake.output.batches,
    confusion=snakemake.output.confusion,
)
