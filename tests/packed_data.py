"""Tiny packed datasets made with the real data stage (simulate -> split -> pack)."""

from __future__ import annotations

from pathlib import Path

from simtrain.data.pack import pack_split
from simtrain.data.simulate import shard_range, write_shard
from simtrain.data.split import split_dataset

CLASSES = {
    "blobs": ("blobs", {"noise": 0.05, "contrast": 0.6}),
    "grating": ("grating", {"noise": 0.05, "contrast": 0.6}),
    "streaks": ("streaks", {"noise": 0.05, "contrast": 0.6}),
}


def make_packed(root: Path, *, per_class: int = 16, size: int = 32, seed: int = 0) -> Path:
    """Write root/packed/{train,validation}/ and return root/packed."""
    shards = []
    for name, (simulator, params) in CLASSES.items():
        shard = root / "images" / "all" / name / "shard-0"
        write_shard(
            shard,
            class_name=name,
            simulator=simulator,
            params=params,
            seed=seed,
            size=size,
            indices=shard_range(0, per_class, per_class),
        )
        shards.append(shard)
    split_dataset(
        shards,
        images_root=root / "images",
        manifest_path=root / "manifest.tsv",
        validation_fraction=0.25,
        seed=seed,
    )
    for split in ("train", "validation"):
        out = root / "packed" / split
        pack_split(
            images_root=root / "images",
            manifest_path=root / "manifest.tsv",
            split=split,
            classes=sorted(CLASSES),
            size=size,
            images_out=out / "images.npy",
            labels_out=out / "labels.npy",
            classes_out=out / "classes.json",
        )
    return root / "packed"
