import sys
from pathlib import Path

# The library of this workflow's own checkout, whichever Python runs the job (a conda env,
# a cluster node): never the parent interpreter's paths or PYTHONPATH. scriptdir reads
# workflow/rules/../scripts, so it is resolved before going up.
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from simtrain.common.logs import log_to

# First, so the imports' own messages land in the log too.
log_to(snakemake.log[0])

from simtrain.common.frameworks import prepare_job

# Before numpy loads: it sizes its thread pool once, at import.
prepare_job(snakemake.threads)

from simtrain.reporting.artifacts import verify_run_dirs

# One folder per replicate (results/runs/{run}/seed-{k}) of the run and of its siblings.
verify_run_dirs(
    snakemake.input.plan,
    sorted({Path(path).parent for path in snakemake.input.diagnostics}),
    markdown=snakemake.output.markdown,
    tsv=snakemake.output.tsv,
    curves=snakemake.output.curves,
)
