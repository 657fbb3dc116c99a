"""BatchNorm evidence for the diagnostics: stored moving statistics versus statistics
recomputed over training data ("precise BN"). A large gap means a fluctuating validation
curve comes from lagging moving averages, not from what the network learned."""

from __future__ import annotations

import logging
import os

import keras
import numpy as np

from simtrain.data.arrays import PackedSplit
from simtrain.training import layers as _custom_layers  # noqa: F401 - registers them for load_model
from simtrain.training.batches import PackedBatches

log = logging.getLogger(__name__)

# Enough batches for stable statistics without re-running a whole epoch on a CPU.
MAX_BATCHES = 20


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _mean_loss(model: keras.Model, data: PackedBatches, labels: np.ndarray) -> tuple[float, float]:
    probabilities = np.asarray(model.predict(data, verbose=0), dtype=np.float64)
    true_p = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    return float(-np.log(true_p).mean()), accuracy


def recompute_statistics(model: keras.Model, train: PackedBatches) -> None:
    """Replace every BN layer's moving statistics by their average over training batches.

    The network runs in training mode (batch statistics) but without augmentation; with
    momentum k/(k+1) at batch k the moving value becomes the plain mean over batches.
    """
    layers = batchnorm_layers(model)
    preprocess = [
        model.get_layer(name)
        for name in ("to_float", "standardize")
        if name in {layer.name for layer in model.layers}
    ]
    classifier = model.layers[-1]
    momenta = [layer.momentum for layer in layers]
    try:
        for k in range(min(len(train), MAX_BATCHES)):
            for layer in layers:
                layer.momentum = k / (k + 1)
            x, _ = train[k]
            for layer in preprocess:
                x = layer(x)
            classifier(x, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def batchnorm_evidence(
    model_path: str | os.PathLike,
    train_dir: str | os.PathLike,
    validation_dir: str | os.PathLike,
    *,
    batch_size: int,
    seed: int,
) -> dict[str, float] | None:
    """Validation loss/accuracy with stored vs recomputed BN statistics; None without BN."""
    model = keras.models.load_model(model_path)
    if not batchnorm_layers(model):
        return None
    train, validation = PackedSplit.load(train_dir), PackedSplit.load(validation_dir)
    full_validation = PackedBatches(validation, batch_size, shuffle=False)
    moving = _mean_loss(model, full_validation, validation.labels)
    recompute_statistics(model, PackedBatches(train, batch_size, shuffle=True, seed=seed))
    recomputed = _mean_loss(model, full_validation, validation.labels)
    log.info(
        "validation loss with moving BN statistics %.4f, recomputed %.4f", moving[0], recomputed[0]
    )
    return {
        "val_loss_moving": moving[0],
        "val_loss_recomputed": recomputed[0],
        "val_accuracy_moving": moving[1],
        "val_accuracy_recomputed": recomputed[1],
    }
