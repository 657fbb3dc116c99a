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
prepare_job(snakemake.threads, keras_backend=snakemake.params.keras_backend)

import os

from simtrain.training.fit import train_run

# How, not what: read from the config rather than params, so that changing them does not
# rerun training (Snakemake tracks params, not the config a script reads).
execution = snakemake.config["execution"]
out_dir = Path(snakemake.output.model).parent
callbacks = []
if execution["tensorboard"]:
    from simtrain.training.tensorboard import TensorBoardLog

    callbacks.append(TensorBoardLog(out_dir))
train_run(
    run=snakemake.wildcards.run,
    settings=snakemake.params.settings,
    train_dir=Path(snakemake.input.train[0]).parent,
    validation_dir=Path(snakemake.input.validation[0]).parent,
    out_dir=out_dir,
    resolved_config=snakemake.params.resolved,
    replicate=int(snakemake.wildcards.replicate),
    threads=snakemake.threads,
    workers=execution["loader_workers"],
    mixed_precision=execution["mixed_precision"],
    data_parallel=execution["data_parallel"],
    search_path=os.getcwd(),
    callbacks=callbacks,
)
