import sys
from pathlib import Path

# The library of this workflow's own checkout, whichever Python runs the job (a conda env,
# a cluster node): never the parent interpreter's paths or PYTHONPATH. scriptdir reads
# workflow/rules/../scripts, so it is resolved before going up.
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from simtrain.common.logs import log_to

log_to(snakemake.log[0])

from simtrain.diagnosis.fixes import write_fix_plan

write_fix_plan(
    snakemake.output.plan,
    run=snakemake.wildcards.run,
    settings=snakemake.params.settings,
    diagnostics_paths=snakemake.input.diagnostics,
)
