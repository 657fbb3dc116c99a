# Shared helpers for the rule files: config lookups and library paths.
import os
from pathlib import Path

from simtrain.config import BASELINE_MODEL, check_classes, check_runs, resolve_run
from simtrain.simulate import shard_count
from simtrain.simulators import simulator_source_file

LIBRARY = Path(workflow.basedir) / "src" / "simtrain"
CLASSES = sorted(config["classes"])
SPLITS = ["train", "validation"]

RUNS = list(config["runs"])
DEEP_RUNS = [r for r in RUNS if config["runs"][r]["model"] != BASELINE_MODEL]
BASELINE_RUNS = [r for r in RUNS if r not in DEEP_RUNS]

check_classes(config, search_path=os.getcwd())
check_runs(config, search_path=os.getcwd())


wildcard_constraints:
    klass="|".join(CLASSES),
    shard=r"\d+",
    split="|".join(SPLITS),


def library_files(*modules):
    """Library modules a rule runs, as inputs: editing one reruns the rule."""
    return [str(LIBRARY / f"{module}.py") for module in ("io", "faults", *modules)]


def shard_dirs(klass):
    n = shard_count(config["images_per_class"], config["images_per_shard"])
    return [f"results/images/all/{klass}/shard-{shard}" for shard in range(n)]


def simulator_files(wildcards):
    """The module defining the class's simulator, so editing a plug-in reruns its shards."""
    source = simulator_source_file(
        config["classes"][wildcards.klass]["simulator"], os.getcwd()
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
    return outputs
