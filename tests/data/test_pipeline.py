"""The data stage in one call builds the same packed arrays whenever it is asked."""

from __future__ import annotations

import json

import numpy as np

from simtrain.data.pipeline import build_packed_dataset

CLASSES = {"blobs": ("blobs", {"noise": 0.1}), "rings": ("rings", {"noise": 0.1})}


def test_packed_dataset_is_split_stratified_and_reproducible(tmp_path):
    first = build_packed_dataset(tmp_path / "a", CLASSES, per_class=8, size=16, seed=3)
    second = build_packed_dataset(tmp_path / "b", CLASSES, per_class=8, size=16, seed=3)
    for split, count in (("train", 12), ("validation", 4)):
        images = np.load(first / split / "images.npy")
        labels = np.load(first / split / "labels.npy")
        assert images.shape == (count, 16, 16, 1) and images.dtype == np.uint8
        assert np.bincount(labels).tolist() == [count // 2, count // 2]
        assert json.loads((first / split / "classes.json").read_text()) == ["blobs", "rings"]
        assert np.array_equal(images, np.load(second / split / "images.npy"))
