"""Tests for simtrain.reporting.plots: each figure is a real, non-blank PNG, no temp files left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from simtrain.reporting.plots import (
    plot_batches,
    plot_best_accuracy,
    plot_confusion,
    plot_curves,
    plot_learning_curve,
    plot_samples,
    plot_validation_accuracy,
)

CLASSES = ["blobs", "rings", "streaks"]


def assert_single_real_png(path: Path) -> None:
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 0


def history(epochs: int) -> pd.DataFrame:
    steps = np.arange(1, epochs + 1)
    return pd.DataFrame(
        {
            "epoch": steps,
            "loss": 1.5 / steps,
            "accuracy": 1 - 0.6 / steps,
            "val_loss": 1.6 / steps + 0.05 * np.sin(steps),
            "val_accuracy": 1 - 0.7 / steps + 0.02 * np.sin(steps),
            "learning_rate": 0.001,
        }
    )


def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": ["hog", "cnn_100", "cnn_400", "resnet50"],
            "model": ["baseline", "small_cnn", "small_cnn", "resnet50"],
            "train_images": [400, 100, 400, 400],
            "best_val_accuracy": [0.5, 0.62, 0.85, 0.4],
            "accuracy": [0.5, 0.6, 0.8, 0.35],
            "ci_low": [0.43, 0.53, 0.74, 0.29],
            "ci_high": [0.57, 0.67, 0.85, 0.42],
            "final_val_accuracy": [0.5, 0.58, 0.72, 0.3],
            "chance": [1 / 3] * 4,
            "majority_rate": [0.4] * 4,
        }
    )


def test_training_curves_with_noise_band(tmp_path: Path):
    path = tmp_path / "curves.png"
    plot_curves(history(8), path, {"val_loss": 0.05, "val_accuracy": 0.03}, title="small_cnn")
    assert_single_real_png(path)


def test_curves_of_a_one_row_baseline_without_loss(tmp_path: Path):
    baseline = history(1).assign(loss=np.nan, val_loss=np.nan)
    path = tmp_path / "curves.png"
    plot_curves(baseline, path, None)
    assert_single_real_png(path)


def test_batch_losses_with_epoch_boundaries(tmp_path: Path):
    rng = np.random.default_rng(0)
    batches = pd.DataFrame(
        {"epoch": np.repeat([1, 2, 3], 20), "batch": np.tile(np.arange(20), 3), "batch_size": 8}
    )
    batches["step"] = np.arange(1, 61)
    batches["loss"] = 2 / np.sqrt(batches["step"]) + rng.exponential(0.1, 60)
    batches["accuracy"] = 0.5
    path = tmp_path / "batches.png"
    plot_batches(batches, path)
    assert_single_real_png(path)


def test_batches_of_a_run_without_a_batch_log_say_so(tmp_path: Path):
    path = tmp_path / "batches.png"
    plot_batches(None, path)
    assert_single_real_png(path)


def test_confusion_matrix(tmp_path: Path):
    predictions = pd.DataFrame(
        {"true": ["blobs", "blobs", "rings", "streaks"], "predicted": ["blobs", "rings"] * 2}
    )
    path = tmp_path / "confusion.png"
    plot_confusion(predictions, CLASSES, path)
    assert_single_real_png(path)


def test_confusion_matrix_rejects_unknown_classes(tmp_path: Path):
    predictions = pd.DataFrame({"true": ["blobs"], "predicted": ["squares"]})
    with pytest.raises(ValueError, match="squares"):
        plot_confusion(predictions, CLASSES, tmp_path / "confusion.png")


def test_sample_grid_from_a_memory_map(tmp_path: Path):
    rng = np.random.default_rng(1)
    images = np.lib.format.open_memmap(
        tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=(12, 16, 16, 1)
    )
    images[:] = rng.integers(0, 256, size=images.shape, dtype=np.uint8)
    images.flush()
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2])  # streaks has fewer than per_class
    out = tmp_path / "plots"
    plot_samples(np.load(tmp_path / "images.npy", mmap_mode="r"), labels, CLASSES, out / "s.png", 4)
    assert_single_real_png(out / "s.png")


def test_validation_accuracy_of_all_runs(tmp_path: Path):
    path = tmp_path / "validation.png"
    plot_validation_accuracy(
        {"small_cnn": [history(6)], "resnet50": [history(4)], "hog": [history(1)]}, path
    )
    assert_single_real_png(path)


def test_validation_accuracy_shades_the_range_of_a_runs_seeds(tmp_path: Path):
    seeds = [
        history(6).assign(val_accuracy=lambda h, k=k: h["val_accuracy"] + 0.05 * k)
        for k in (0, 1, 2)
    ]
    plot_validation_accuracy({"cnn": seeds}, tmp_path / "seeds" / "a.png")
    plot_validation_accuracy({"cnn": seeds[1:2]}, tmp_path / "one" / "a.png")
    assert_single_real_png(tmp_path / "seeds" / "a.png")
    # The mean of the three seeds is seed 1's curve: the shaded range (and the legend) differ.
    assert (tmp_path / "seeds" / "a.png").read_bytes() != (tmp_path / "one" / "a.png").read_bytes()


def test_best_accuracy_with_intervals_and_chance(tmp_path: Path):
    path = tmp_path / "best.png"
    plot_best_accuracy(table(), path)
    assert_single_real_png(path)


def test_learning_curve(tmp_path: Path):
    points = table()[lambda frame: frame["model"] == "small_cnn"]
    path = tmp_path / "learning.png"
    plot_learning_curve(points, path)
    assert_single_real_png(path)


def test_learning_curve_without_a_sweep_says_so(tmp_path: Path):
    path = tmp_path / "learning.png"
    plot_learning_curve(table().iloc[0:0], path)
    assert_single_real_png(path)


def test_replotting_replaces_the_file(tmp_path: Path):
    path = tmp_path / "curves.png"
    plot_curves(history(3), path)
    plot_curves(history(5), path)
    assert_single_real_png(path)
