"""The packed arrays of one split, and class-stratified subsets of them (no Keras needed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PackedSplit:
    images: np.ndarray  # (N, H, W, 1) uint8 or uint16 (bit_depth 16), usually a read-only memmap
    labels: np.ndarray  # (N,) int64
    classes: list[str]

    @classmethod
    def load(cls, directory: str | Path) -> PackedSplit:
        directory = Path(directory)
        images = np.load(directory / "images.npy", mmap_mode="r")
        labels = np.load(directory / "labels.npy")
        classes = json.loads((directory / "classes.json").read_text())
        if (
            images.dtype not in (np.uint8, np.uint16)
            or images.ndim != 4
            or len(images) != len(labels)
        ):
            raise ValueError(
                f"{directory}: expected uint8 or uint16 images (N, H, W, 1) and N labels, got "
                f"{images.dtype} {images.shape} and {labels.shape}"
            )
        return cls(images, labels, classes)

    def __len__(self) -> int:
        return len(self.labels)


def stratified_subset(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified subset of `size` images (all when None)."""
    everything = np.arange(len(labels))
    if size is None or size >= len(labels):
        if size is not None and size > len(labels):
            raise ValueError(f"train_images={size} exceeds the {len(labels)} training images")
        return everything
    # Imported here: reading packed data must not need scikit-learn (the GPU benchmark box
    # has none).
    from sklearn.model_selection import train_test_split

    subset, _ = train_test_split(everything, train_size=size, stratify=labels, random_state=seed)
    return np.sort(subset)
