from simtrain.common.logs import log_to

# First, so the imports' own messages (TensorFlow's) land in the log too.
log_to(snakemake.log[0])

from pathlib import Path

from simtrain.data.split import split_dataset

split_dataset(
    snakemake.input.shards,
    images_root=Path(snakemake.output.manifest).parent,
    manifest_path=snakemake.output.manifest,
    validation_fraction=snakemake.params.validation_fraction,
    seed=snakemake.params.seed,
)
