from simtrain.common.logs import log_to

# First, so the imports' own messages (TensorFlow's) land in the log too.
log_to(snakemake.log[0])

import os
from pathlib import Path

from simtrain.training.fit import train_run

train_run(
    run=snakemake.wildcards.run,
    settings=snakemake.params.settings,
    train_dir=Path(snakemake.input.train[0]).parent,
    validation_dir=Path(snakemake.input.validation[0]).parent,
    out_dir=Path(snakemake.output.model).parent,
    resolved_config=snakemake.params.resolved,
    threads=snakemake.threads,
    workers=snakemake.params.loader_workers,
    mixed_precision=snakemake.params.mixed_precision,
    data_parallel=snakemake.params.data_parallel,
    search_path=os.getcwd(),
)
