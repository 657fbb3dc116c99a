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

from simtrain.reporting.artifacts import compare_run_dirs

# One folder per replicate (results/runs/{run}/seed-{k}), configured runs first, then siblings.
compare_run_dirs(
    [Path(path).parent for path in snakemake.input.diagnostics],
    tsv=snakemake.output.tsv,
    markdown=snakemake.output.markdown,
    accuracy_plot=snakemake.output.accuracy,
    best_plot=snakemake.output.best,
    learning_curve_plot=snakemake.output.learning_curve,
    fix_tables=snakemake.input.fixes,
)
