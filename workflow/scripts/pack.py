import sys
from pathlib import Path

# The library of this workflow's own checkout, whichever Python runs the job (a conda env,
# a cluster node): never the parent interpreter's paths or PYTHONPATH. scriptdir reads
# workflow/rules/../scripts, so it is resolved before going up.
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from simtrain.common.logs import log_to

# First, so the imports' own messages (TensorFlow's) land in the log too.
log_to(snakemake.log[0])

from simtrain.common.frameworks import prepare_job

# Before numpy, TensorFlow or JAX load: they size their thread pools once, at import.
prepare_job(snakemake.threads)

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
    bit_depth=snakemake.params.bit_depth,
)
