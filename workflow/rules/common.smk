# Shared helpers for the rule files: config lookups and library paths.
import os
from pathlib import Path

from simtrain.config import check_classes
from simtrain.simulate import shard_count
from simtrain.simulators import simulator_source_file

LIBRARY = Path(workflow.basedir) / "src" / "simtrain"
CLASSES = sorted(config["classes"])
SPLITS = ["train", "validation"]

check_classes(config, search_path=os.getcwd())


wildcard_constraints:
    klass="|".join(CLASSES),
    shard=r"\d+",
    split="|".join(SPLITS),


def library_files(*modules):
    """Library modules a rule runs, as inputs: editing one reruns the rule."""
    return [str(LIBRARY / f"{module}.py") for module in ("io", *modules)]


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
