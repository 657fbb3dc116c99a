# Shared helpers of the workflow (config lookups, library paths), kept apart from its rules.
import os
import re
from functools import cache
from pathlib import Path

from simtrain.common.modules import module_files, workflow_input
from simtrain.common.plugins import is_plugin, plugin_source_file
from simtrain.common.runs import (
    FIX_SEPARATOR,
    apply_change,
    parse_sibling,
    replicate_settings,
)
from simtrain.config import BASELINE_MODEL, resolve_run
from simtrain.evaluation.run_model import MODEL_FILES
from simtrain.training.tables import BASELINE_MODEL_FILE
from simtrain.diagnosis.fixes import read_fix_plan
from simtrain.data.folders import (
    fingerprint,
    planned_images,
    planned_labelled_images,
)
from simtrain.data.simulate import shard_count
from simtrain.data.simulators import simulator_source_file

# The Keras backend's env, with its CUDA wheels on a GPU node (paths from the rule files).
TRAIN_ENV = {
    ("tensorflow", "cpu"): "../../envs/train.yaml",
    ("tensorflow", "gpu"): "../../envs/train-gpu.yaml",
    ("jax", "cpu"): "../../envs/train-jax.yaml",
    ("jax", "gpu"): "../../envs/train-jax-gpu.yaml",
}[config["keras_backend"], config["train_env"]]
CLASSES = sorted(config["classes"])
# Classes whose images come from a folder of real images instead of a simulator.
FOLDER_CLASSES = [k for k in CLASSES if "folder" in config["classes"][k]]
SIMULATED_CLASSES = [k for k in CLASSES if k not in FOLDER_CLASSES]
EVALUATION_SETS = list(config["evaluation"])
PREDICTIONS = list(config["predict"])
SPLITS = ["train", "validation"]

RUNS = list(config["runs"])
DEEP_RUNS = [r for r in RUNS if config["runs"][r]["model"] != BASELINE_MODEL]
BASELINE_RUNS = [r for r in RUNS if r not in DEEP_RUNS]
# Deep runs whose diagnosed fixes are tried: their siblings <run>--fix-<code> are known only
# after the plan_fixes checkpoint has read the run's diagnostics.
VERIFYING_RUNS = [r for r in DEEP_RUNS if resolve_run(config, r)["verify_fixes"]]


def _one_of(names):
    return "|".join(map(re.escape, names)) or "^$"


# Wildcard patterns: a deep run is a configured one or a verifying run's sibling.
DEEP_RUN_PATTERN = f"(?:{_one_of(DEEP_RUNS)})" + (
    f"(?:{re.escape(FIX_SEPARATOR)}[a-z_]+)?" if VERIFYING_RUNS else ""
)
BASELINE_RUN_PATTERN = _one_of(BASELINE_RUNS)


def library_files(script):
    """Every library module a rule's script imports (transitively), as inputs of the rule,
    so that editing one reruns exactly the jobs that run it. Relative to the working
    directory when the checkout is it: a moved checkout reruns nothing."""
    scripts = Path(workflow.basedir) / "workflow" / "scripts"
    return [
        workflow_input(f, os.getcwd()) for f in module_files(script=scripts / script)
    ]


def shard_dirs(klass):
    if klass in FOLDER_CLASSES:
        images, per_shard = (
            len(class_images(klass)),
            config["ingest"]["images_per_shard"],
        )
    else:
        images, per_shard = config["images_per_class"], config["images_per_shard"]
    n = shard_count(images, per_shard)
    return [f"results/images/all/{klass}/shard-{shard}" for shard in range(n)]


def class_images(klass):
    """The images of a folder class, listed once at planning (names, sizes, times only)."""
    return planned_images(config["classes"][klass]["folder"], f"classes.{klass}.folder")


@cache  # once per folder: every shard's job asks
def folder_fingerprint(klass):
    """Changes when a file of the class's folder is added, removed or modified: a param,
    so that class's ingest jobs rerun (planning lists no input per image)."""
    return fingerprint(class_images(klass))


@cache
def evaluation_fingerprint(name):
    folder, key = config["evaluation"][name], f"evaluation.{name}"
    sets = planned_labelled_images(folder, tuple(CLASSES), key)
    return fingerprint([entry for klass in sorted(sets) for entry in sets[klass]])


@cache
def prediction_fingerprint(name):
    folder = config["predict"][name]["folder"]
    return fingerprint(planned_images(folder, f"predict.{name}.folder"))


def conversion_settings():
    """How real images become the pipeline's images (simtrain.data.images.Conversion)."""
    return {
        "size": config["image_size"],
        "aspect": config["ingest"]["aspect"],
        "min_size": config["ingest"]["min_size"],
        "bit_depth": config["bit_depth"],
    }


def simulator_files(wildcards):
    """The module defining the class's simulator, so editing a plug-in reruns its shards."""
    source = simulator_source_file(
        config["classes"][wildcards.klass]["simulator"], os.getcwd()
    )
    return [workflow_input(source, os.getcwd())] if source else []


def model_files(wildcards):
    """The module defining a plug-in model, so editing it retrains the runs that use it
    (the built-in models are part of library_files already)."""
    model = config["runs"][parse_sibling(wildcards.run)[0]]["model"]
    source = (
        plugin_source_file(model, "model", os.getcwd()) if is_plugin(model) else None
    )
    return [workflow_input(source, os.getcwd())] if source else []


def packed_outputs():
    return expand(
        "results/packed/{split}/{name}",
        split=SPLITS,
        name=["images.npy", "labels.npy", "classes.json"],
    )


def packed(split):
    return multiext(
        f"results/packed/{split}/", "images.npy", "labels.npy", "classes.json"
    )


def fix_plan_path(run):
    return f"results/runs/{run}/fixes.json"


def sibling_change(run):
    """The config change a sibling trains with, from its parent's fix plan (which exists:
    the sibling became a job only after the plan_fixes checkpoint wrote it)."""
    parent, code = parse_sibling(run)
    for fix in read_fix_plan(fix_plan_path(parent))["fixes"]:
        if fix["code"] == code:
            return fix["change"]
    raise ValueError(
        f"{fix_plan_path(parent)}: no fix {code!r} to verify for run {run!r}"
    )


def run_settings(run, replicate=None):
    """A run's settings (a sibling's: its parent's with the fix applied); with `replicate`,
    what that replicate trains with (its seed, no workflow-only keys)."""
    parent, code = parse_sibling(run)
    settings = resolve_run(config, parent)
    if code is not None:
        settings = apply_change(settings, sibling_change(run)) | {"verify_fixes": False}
    return (
        settings if replicate is None else replicate_settings(settings, int(replicate))
    )


def fix_plan_input(wildcards):
    """A sibling's dependency on its parent's fix plan; ancient() because a rewritten plan
    with the same change must not retrain it (the change itself is a param)."""
    parent, code = parse_sibling(wildcards.run)
    if code is None:
        return []
    return ancient(checkpoints.plan_fixes.get(run=parent).output.plan)


def replicates(run):
    return range(run_settings(run)["repeats"])


def seed_dirs(run):
    return [f"results/runs/{run}/seed-{k}" for k in replicates(run)]


def resolved_config(run, replicate):
    """What config.resolved.yaml records: the data config and this replicate's settings."""
    data = {
        k: config[k]
        for k in (
            "seed",
            "image_size",
            "images_per_class",
            "validation_fraction",
            "classes",
            "bit_depth",
            "ingest",
        )
    }
    return {**data, "runs": {run: run_settings(run, replicate)}}


def siblings(run):
    """The sibling runs verifying `run`'s fixes (after its plan_fixes checkpoint ran)."""
    plan = read_fix_plan(checkpoints.plan_fixes.get(run=run).output.plan)
    return [fix["sibling"] for fix in plan["fixes"]]


def all_siblings():
    """Every verifying run's siblings (for input functions: waits for the checkpoints)."""
    return [sibling for run in VERIFYING_RUNS for sibling in siblings(run)]


def all_runs():
    """Configured runs, then the siblings."""
    return RUNS + all_siblings()


def run_files(*names, runs):
    return [f"{d}/{name}" for run in runs for d in seed_dirs(run) for name in names]


def final_outputs():
    outputs = packed_outputs() + [
        "results/samples/train.png",
        "results/samples/validation.png",
    ]
    if RUNS:
        outputs += ["results/comparison.tsv", "results/comparison.md"]
        outputs += expand("results/samples/model_view/{run}.png", run=DEEP_RUNS)
        outputs += expand("results/runs/{run}/fixes.md", run=VERIFYING_RUNS)
        outputs += run_files(*PLOT_NAMES, runs=RUNS)
        if EVALUATION_SETS:
            outputs += ["results/evaluation.md", "results/evaluation.tsv"]
    outputs += expand("results/predictions/{name}/predictions.tsv", name=PREDICTIONS)
    return outputs


PLOT_NAMES = ["diagnostics.json", "curves.png", "confusion.png"]


def sibling_plots(wildcards):
    """The sibling runs' diagnostics and plots, known once the plan_fixes checkpoints ran
    (the configured runs' are in final_outputs, so a dry run lists them)."""
    return run_files(*PLOT_NAMES, runs=all_siblings())


TRAIN_OUTPUTS = [
    "history.tsv",
    "timing.tsv",
    "predictions.tsv",
    "metrics.json",
    "config.resolved.yaml",
]


# What only a deep run writes (the baseline has no batches, network or BatchNorm).
DEEP_OUTPUTS = ["batches.tsv", "model.keras", "predictions_precise_bn.tsv"]


def deep_run_files(*names, runs):
    """run_files of the deep runs among `runs`."""
    return run_files(*names, runs=[run for run in runs if is_deep(run)])


def is_deep(run):
    return parse_sibling(run)[0] in DEEP_RUNS


def verification_priority(wildcards):
    """Runs that verify fixes, and their siblings, train and are diagnosed first: the
    siblings are known only once their parent is diagnosed, and would otherwise start last
    and run alone on a machine the other jobs have left."""
    return 10 if parse_sibling(wildcards.run)[0] in VERIFYING_RUNS else 0


def run_model_file(run, replicate, choice="final"):
    """A replicate's saved model: choice final, best or precise_bn of a deep run, the fitted
    pipeline of the baseline."""
    seed_dir = f"results/runs/{run}/seed-{replicate}"
    if not is_deep(run):
        return f"{seed_dir}/{BASELINE_MODEL_FILE}"
    return f"{seed_dir}/{MODEL_FILES[choice]}"


def run_outputs(wildcards):
    """A replicate's training outputs: the deep rule's when it has a model, else the
    baseline's."""
    names = TRAIN_OUTPUTS + (DEEP_OUTPUTS if is_deep(wildcards.run) else [])
    seed_dir = f"results/runs/{wildcards.run}/seed-{wildcards.replicate}"
    return [f"{seed_dir}/{name}" for name in names]
