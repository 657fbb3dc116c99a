"""Tiny packed datasets made with the real data stage (simulate -> split -> pack)."""

from __future__ import annotations

from pathlib import Path

from simtrain.data.pipeline import build_packed_dataset

CLASSES = {
    "blobs": ("blobs", {"noise": 0.05, "contrast": 0.6}),
    "grating": ("grating", {"noise": 0.05, "contrast": 0.6}),
    "streaks": ("streaks", {"noise": 0.05, "contrast": 0.6}),
}


def make_packed(root: Path, *, per_class: int = 16, size: int = 32, seed: int = 0) -> Path:
    """Write root/packed/{train,validation}/ and return root/packed."""
    return build_packed_dataset(root, CLASSES, per_class=per_class, size=size, seed=seed)
