from simtrain.common.logs import log_to

# First, so the imports' own messages (TensorFlow's) land in the log too.
log_to(snakemake.log[0])

from pathlib import Path

from simtrain.diagnosis.run_dir import diagnose_run_dir

diagnose_run_dir(
    Path(snakemake.output.json).parent,
    run=snakemake.wildcards.run,
    settings=snakemake.params.settings,
    train_dir=Path(snakemake.input.train[0]).parent,
    validation_dir=Path(snakemake.input.validation[0]).parent,
    json_path=snakemake.output.json,
    markdown_path=snakemake.output.markdown,
)
