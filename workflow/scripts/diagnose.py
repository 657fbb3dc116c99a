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

from simtrain.diagnosis.run_dir import diagnose_run_dir

diagnose_run_dir(
    Path(snakemake.output.json).parent,
    run=snakemake.wildcards.run,
    settings=snakemake.params.settings,
    train_dir=Path(snakemake.input.train[0]).parent,
    validation_dir=Path(snakemake.input.validation[0]).parent,
    json_path=snakemake.output.json,
    markdown_path=snakemake.output.markdown,
    search_path=os.getcwd(),
    replicate_dirs=[Path(path).parent for path in snakemake.input.replicates],
    # evaluation/<set>/predictions.tsv: the set's name is its folder's.
    evaluation={Path(path).parent.name: path for path in snakemake.input.evaluation},
)
