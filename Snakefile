# simtrain: simulate -> split -> pack -> train -> diagnose -> report.
from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile is a complete config: load the default only when none is given,
# so a small test config does not inherit the default classes and runs.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/pack.smk"


rule all:
    default_target: True
    input:
        packed_outputs(),
