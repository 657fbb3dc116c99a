# Shared helpers of the workflow (config lookups, library paths), kept apart from its rules.
import os
from pathlib import Path

from simtrain.common.modules import module_files
from simtrain.common.plugins import is_plugin, plugin_source_file
from simtrain.config import BASELINE_MODEL, resolve_run
from simtrain.data.simulate import shard_count
from simtrain.data.simulators import simulator_source_file

# Relative to the rule files. The GPU env only differs by TensorFlow's CUDA wheels.
TRAIN_ENV = {"cpu": "../../envs/train.yaml", "gpu": "../../envs/train-gpu.yaml"}[
    config["train_env"]
]
CLASSES = sorted(config["classes"])
SPLITS = ["train", "validation"]

RUNS = list(config["runs"])
DEEP_RUNS = [r for r in RUNS if config["runs"][r]["model"] != BASELINE_MODEL]
BASELINE_RUNS = [r for r in RUNS if r not in DEEP_RUNS]


def library_files(script):
    """Every library module a rule's script imports (transitively), as inputs of the rule,
    so that editing one reruns exactly the jobs that run it."""
    return module_files(script=Path(workflow.basedir) / "workflow" / "scripts" / script)


def shard_dirs(klass):
    n = shard_count(config["images_per_class"], config["images_per_shard"])
    return [f"results/images/all/{klass}/shard-{shard}" for shard in range(n)]


def simulator_files(wildcards):
    """The module defining the class's simulator, so editing a plug-in reruns its shards."""
    source = simulator_source_file(
        config["classes"][wildcards.klass]["simulator"], os.getcwd()
    )
    return [source] if source else []


def model_files(wildcards):
    """The module defining a plug-in model, so editing it retrains the runs that use it
    (the built-in models are part of library_files already)."""
    model = config["runs"][wildcards.run]["model"]
    source = (
        plugin_source_file(model, "model", os.getcwd()) if is_plugin(model) else None
    )
    return [source] if source else []


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


def run_settings(run):
    return resolve_run(config, run)


def resolved_config(run):
    """What config.resolved.yaml records: the data config and this run's settings."""
    data = {
        k: config[k]
        for k in (
            "seed",
            "image_size",
            "images_per_class",
            "validation_fraction",
            "classes",
        )
    }
    return {**data, "runs": {run: run_settings(run)}}


def run_files(*names, runs=None):
    return expand(
        "results/runs/{run}/{name}", run=RUNS if runs is None else runs, name=names
    )


def final_outputs():
    outputs = packed_outputs() + [
        "results/samples/train.png",
        "results/samples/validation.png",
    ]
    if RUNS:
        outputs += run_files("diagnostics.json", "curves.png", "confusion.png")
        outputs += ["results/comparison.tsv", "results/comparison.md"]
        outputs += expand("results/samples/model_view/{run}.png", run=DEEP_RUNS)
    return outputs


TRAIN_OUTPUTS = [
    "history.tsv",
    "timing.tsv",
    "predictions.tsv",
    "metrics.json",
    "config.resolved.yaml",
]


def run_outputs(wildcards):
    """A run's training outputs: the deep rule's when it has a model, else the baseline's."""
    names = TRAIN_OUTPUTS + (
        ["batches.tsv", "model.keras"] if wildcards.run in DEEP_RUNS else []
    )
    return [f"results/runs/{wildcards.run}/{name}" for name in names]
