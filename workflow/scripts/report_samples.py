from simtrain.common.logs import log_to

# First, so the imports' own messages (TensorFlow's) land in the log too.
log_to(snakemake.log[0])

from pathlib import Path

from simtrain.reporting.artifacts import plot_split_samples

plot_split_samples(
    Path(snakemake.input[0]).parent,
    snakemake.output[0],
    per_class=snakemake.params.per_class,
    seed=snakemake.params.seed,
)
