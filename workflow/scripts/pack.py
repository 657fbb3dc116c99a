from simtrain.common.logs import log_to

# First, so the imports' own messages (TensorFlow's) land in the log too.
log_to(snakemake.log[0])

from pathlib import Path

from simtrain.data.pack import pack_split

pack_split(
    images_root=Path(snakemake.input.manifest).parent,
    manifest_path=snakemake.input.manifest,
    split=snakemake.wildcards.split,
    classes=snakemake.params.classes,
    size=snakemake.params.image_size,
    images_out=snakemake.output.images,
    labels_out=snakemake.output.labels,
    classes_out=snakemake.output.classes,
    threads=snakemake.threads,
)
