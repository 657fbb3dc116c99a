from simtrain.common.logs import log_to

# First, so the imports' own messages (TensorFlow's) land in the log too.
log_to(snakemake.log[0])

from pathlib import Path

from simtrain.training.baseline import train_baseline

train_baseline(
    run=snakemake.wildcards.run,
    settings=snakemake.params.settings,
    train_dir=Path(snakemake.input.train[0]).parent,
    validation_dir=Path(snakemake.input.validation[0]).parent,
    out_dir=Path(snakemake.output[0]).parent,
    resolved_config=snakemake.params.resolved,
)
