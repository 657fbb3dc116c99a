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

from simtrain.reporting.model_view import plot_model_view
from simtrain.training.models import custom_objects

plot_model_view(
    snakemake.input.model,
    Path(snakemake.input.train[0]).parent,
    Path(snakemake.input.validation[0]).parent,
    snakemake.output[0],
    per_class=snakemake.params.per_class,
    seed=snakemake.params.seed,
    title=snakemake.wildcards.run,
    # A plug-in model's own layer classes, to load its model.keras.
    custom_objects=custom_objects(snakemake.params.model, os.getcwd()),
)
