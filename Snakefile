# simtrain: simulate -> split -> pack -> train -> diagnose -> report.
import os
import sys

import yaml
from snakemake.utils import min_version, validate

# This checkout's library, not whichever simtrain the interpreter has installed.
sys.path.insert(0, f"{workflow.basedir}/src")

from simtrain.config import (
    ConfigError,
    check_classes,
    check_config_files,
    check_folders,
    check_runs,
    check_schema,
    config_error_report,
)

min_version("9.14")  # as pyproject.toml pins snakemake


# A --configfile is a complete config: load the default only when none is given,
# so a small test config does not inherit the default classes and runs.
# workflow.overwrite_configfiles (the --configfile files) is no public Snakemake API: pinned
# by pyproject.toml (snakemake <10) and tested (tests/workflow/test_workflow.py).
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


SCHEMA = f"{workflow.basedir}/workflow/schemas/config.schema.yaml"
# A bad config stops here with a few readable lines (key, value, what is allowed, file)
# instead of Snakemake's dump of the whole schema; nothing runs and nothing is written.
try:
    check_config_files(workflow.configfiles)
    with open(SCHEMA) as schema:
        check_schema(config, yaml.safe_load(schema))
    validate(config, SCHEMA)  # passes now; fills in the schema's defaults
    check_classes(config, search_path=os.getcwd())
    check_runs(config, search_path=os.getcwd())
    check_folders(config)
except ConfigError as error:
    sys.exit(config_error_report(error, workflow.configfiles))


# The CPUs this process may use (cgroups and taskset included, unlike os.cpu_count()).
MACHINE_CPUS = (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
)
# Locally, --cores above the machine's CPUs would run jobs side by side on the same cores
# (the README's `--cores 8` on a 2-core machine): cap it. Cluster jobs get their own CPUs.
# register_resource("_cores") is no public API either: pinned and tested the same way.
if workflow.local_exec and (workflow.resource_settings.cores or 0) > MACHINE_CPUS:
    print(
        f"--cores {workflow.resource_settings.cores} capped at this machine's {MACHINE_CPUS} CPUs",
        file=sys.stderr,
    )
    workflow.register_resource("_cores", MACHINE_CPUS)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    klass="|".join(CLASSES),
    shard=r"\d+",
    split="|".join(SPLITS),
    run=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    replicate=r"\d+",


include: "workflow/rules/simulate.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/pack.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/diagnose.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/predict.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
        sibling_plots,
