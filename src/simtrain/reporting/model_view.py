"""Training and validation images as a trained model sees them, side by side.

Training images pass the model's own preprocessing in training mode (uint8 -> float,
augmentation warp, per-image standardisation); validation images pass it in inference mode
(no warp). Both are drawn on one fixed colour scale, so a difference in texture or noise that
augmentation introduces (the AUGMENTATION_SHIFT the diagnostics measure) is visible, and each
panel's pixel noise (the spread of differences between horizontal neighbours) is printed.
"""

from __future__ import annotations

import os

import keras
import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from simtrain.common.files import atomic_path  # noqa: E402
from simtrain.data.arrays import PackedSplit  # noqa: E402
from simtrain.training import layers as _custom_layers  # noqa: E402, F401 - for load_model
from simtrain.training.models import classifier_inputs  # noqa: E402

# Standardised images span a few units; a fixed scale makes contrast comparable across panels.
COLOUR_RANGE = 3.0


def pixel_noise(images: np.ndarray) -> np.ndarray:
    """Per image: standard deviation of horizontal neighbour differences / √2 (for white
    noise, its standard deviation; smoothing lowers it)."""
    differences = np.diff(np.asarray(images, dtype=np.float64)[..., 0], axis=2)
    return differences.reshape(len(images), -1).std(axis=1) / np.sqrt(2)


def _draw(rng: np.random.Generator, labels: np.ndarray, per_class: int, classes: int):
    chosen = []
    for label in range(classes):
        members = np.flatnonzero(labels == label)
        chosen.append(np.sort(rng.choice(members, min(per_class, len(members)), replace=False)))
    return chosen


def model_inputs(model: keras.Model, images: np.ndarray, *, training: bool) -> np.ndarray:
    """`images` (uint8 N×H×W×1) after the model's preprocessing layers."""
    x = classifier_inputs(model, keras.ops.convert_to_tensor(np.asarray(images)), augment=training)
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float32)


def plot_model_view(
    model_path: str | os.PathLike,
    train_dir: str | os.PathLike,
    validation_dir: str | os.PathLike,
    path: str | os.PathLike,
    *,
    per_class: int = 3,
    seed: int = 0,
    title: str | None = None,
    custom_objects: dict[str, type] | None = None,
) -> None:
    """One row per class: `per_class` training images as seen, then as many validation ones."""
    model = keras.models.load_model(model_path, custom_objects=custom_objects)
    train, validation = PackedSplit.load(train_dir), PackedSplit.load(validation_dir)
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)  # the augmentation draws, for a reproducible figure
    n_classes = len(train.classes)
    seen = {}
    for split, data, training in (("train", train, True), ("validation", validation, False)):
        chosen = _draw(rng, data.labels, per_class, n_classes)
        seen[split] = [model_inputs(model, data.images[c], training=training) for c in chosen]
    noise = {split: pixel_noise(np.concatenate(seen[split])).mean() for split in seen}
    figure, axes = plt.subplots(
        n_classes,
        2 * per_class,
        figsize=(1.5 * 2 * per_class + 1.2, 1.5 * n_classes + 0.8),
        squeeze=False,
    )
    for row, name in enumerate(train.classes):
        for block, split in enumerate(("train", "validation")):
            for column in range(per_class):
                axis = axes[row, block * per_class + column]
                axis.set_xticks([])
                axis.set_yticks([])
                images = seen[split][row]
                if column >= len(images):
                    axis.set_axis_off()
                    continue
                axis.imshow(
                    images[column][..., 0], cmap="gray", vmin=-COLOUR_RANGE, vmax=COLOUR_RANGE
                )
                axis.set_title(f"noise {pixel_noise(images[column : column + 1])[0]:.2f}", size=7)
                if row == 0 and column == 0:
                    axis.text(0, -0.35, f"{split} (as the model sees it)", transform=axis.transAxes)
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center")
    heading = (
        f"pixel noise: training {noise['train']:.2f}, validation {noise['validation']:.2f} "
        f"(standardised units)"
    )
    figure.suptitle(f"{title}: {heading}" if title else heading, size=9)
    figure.tight_layout()
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(figure)
