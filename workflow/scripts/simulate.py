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

import os

from simtrain.data.simulate import shard_range, write_shard

params = snakemake.params
write_shard(
    snakemake.output[0],
    class_name=snakemake.wildcards.klass,
    simulator=params.simulator,
    params=params.simulator_params,
    seed=params.seed,
    size=params.image_size,
    indices=shard_range(
        int(snakemake.wildcards.shard), params.images_per_class, params.images_per_shard
    ),
    search_path=os.getcwd(),
)
