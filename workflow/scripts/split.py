from simtrain.logs import log_to
from simtrain.split import split_dataset

log_to(snakemake.log[0])
split_dataset(
    snakemake.input.shards,
    images_root=snakemake.params.images_root,
    manifest_path=snakemake.output.manifest,
    validation_fraction=snakemake.params.validation_fraction,
    seed=snakemake.params.seed,
)
