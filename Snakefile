# simtrain: simulate -> split -> pack -> train -> diagnose -> report.
from snakemake.utils import min_version, validate

from simtrain.config import check_config_files

min_version("9.0")


# A --configfile is a complete config: load the default only when none is given,
# so a small test config does not inherit the default classes and runs.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


check_config_files(workflow.configfiles)
validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    klass="|".join(CLASSES),
    shard=r"\d+",
    split="|".join(SPLITS),


include: "workflow/rules/simulate.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/pack.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/diagnose.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
