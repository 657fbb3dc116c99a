"""The whole data stage in one call, without Snakemake: simulate -> split -> pack.

For experiments, benchmarks and tests that need a small packed dataset made by the real code
the workflow runs (one shard per class, so only for small sets).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simtrain.data.pack import pack_split
from simtrain.data.simulate import shard_range, write_shard
from simtrain.data.split import split_dataset


def build_packed_dataset(
    root: str | Path,
    classes: Mapping[str, tuple[str, Mapping[str, Any]]],
    *,
    per_class: int,
    size: int,
    seed: int = 0,
    validation_fraction: float = 0.25,
) -> Path:
    """Write root/images, root/manifest.tsv and root/packed/{train,validation}/; return
    root/packed. `classes` maps a class name to (simulator, simulator parameters)."""
    root = Path(root)
    shards = []
    for name, (simulator, params) in classes.items():
        shard = root / "images" / "all" / name / "shard-0"
        write_shard(
            shard,
            class_name=name,
            simulator=simulator,
            params=dict(params),
            seed=seed,
            size=size,
            indices=shard_range(0, per_class, per_class),
        )
        shards.append(shard)
    split_dataset(
        shards,
        images_root=root / "images",
        manifest_path=root / "manifest.tsv",
        validation_fraction=validation_fraction,
        seed=seed,
    )
    for split in ("train", "validation"):
        out = root / "packed" / split
        pack_split(
            images_root=root / "images",
            manifest_path=root / "manifest.tsv",
            split=split,
            classes=sorted(classes),
            size=size,
            images_out=out / "images.npy",
            labels_out=out / "labels.npy",
            classes_out=out / "classes.json",
        )
    return root / "packed"
