"""Evidence from the trained model: which BatchNorm statistics explain its validation score.

The same weights are scored on the full validation set three times:

1. with the moving statistics stored in the model (what training's validation used);
2. with statistics recomputed over *augmented* training batches: the inputs the weights were
   trained on. 1 vs 2 is BatchNorm lag: moving averages trailing the weights;
3. with statistics recomputed over *un-augmented* training batches: inputs like validation's.
   2 vs 3 is an augmentation-induced shift: augmented training images differ from
   validation images (an interpolating warp smooths their pixel noise), so statistics that
   fit training mis-normalise validation.

Recomputing ("precise BN") runs the network in training mode without updating weights; with
momentum k/(k+1) at batch k each moving value becomes the plain mean over the batches.
"""

from __future__ import annotations

import logging
import math
import os

import keras
import numpy as np
from tqdm import tqdm

from simtrain.data.arrays import PackedSplit, stratified_subset
from simtrain.training import layers as _custom_layers  # noqa: F401 - registers them for load_model
from simtrain.training.batches import PackedBatches
from simtrain.training.models import classifier_inputs
from simtrain.training.tables import per_image_scores

log = logging.getLogger(__name__)

# Statistics are recomputed over batches of the run's own size (what its weights were trained
# to expect), at least 20 of them and enough for 320 images: stable averages, even for tiny
# batches, without re-running a whole epoch of a large network on a CPU.
MIN_BATCHES = 20
MIN_IMAGES = 320


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer, also inside nested models (public Keras API only)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(batchnorm_layers(layer))
    return found


def _score(model: keras.Model, data: PackedBatches, labels: np.ndarray) -> dict[str, object]:
    loss, correct = per_image_scores(model.predict(data, verbose=0), labels)
    return {"loss": float(loss.mean()), "correct": correct}


def recompute_statistics(model: keras.Model, train: PackedBatches, *, augment: bool) -> None:
    """Replace every BN layer's moving statistics by their average over training batches,
    fed through the model's preprocessing with or without its augmentation layer."""
    layers = batchnorm_layers(model)
    classifier = model.layers[-1]
    momenta = [layer.momentum for layer in layers]
    batches = min(len(train), max(MIN_BATCHES, math.ceil(MIN_IMAGES / train.batch_size)))
    try:
        for k in tqdm(range(batches), desc=f"BN statistics, augment={augment}", mininterval=10):
            for layer in layers:
                layer.momentum = k / (k + 1)
            images, _ = train[k]
            classifier(classifier_inputs(model, images, augment=augment), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def _discordant(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(images only a gets right, images only b gets right): the pairs a paired test uses."""
    return int(np.sum(a & ~b)), int(np.sum(~a & b))


def batchnorm_evidence(
    model_path: str | os.PathLike,
    train_dir: str | os.PathLike,
    validation_dir: str | os.PathLike,
    *,
    batch_size: int,
    seed: int,
    train_images: int | None = None,
    custom_objects: dict[str, type] | None = None,
) -> dict[str, float | int | bool | str | None] | None:
    """Validation loss/accuracy with stored vs recomputed BN statistics; None without BN.

    Keys: val_{loss,accuracy}_{moving,recomputed,recomputed_plain} (recomputed = over
    augmented training batches, plain = without augmentation), the discordant image counts
    of the paired comparisons, the largest BN momentum, and the augmentation in the model.
    """
    model = keras.models.load_model(model_path, custom_objects=custom_objects)
    layers = batchnorm_layers(model)
    if not layers:
        return None
    names = {layer.name for layer in model.layers}
    augment = model.get_layer("augment") if "augment" in names else None
    train, validation = PackedSplit.load(train_dir), PackedSplit.load(validation_dir)
    full_validation = PackedBatches(validation, batch_size, shuffle=False)
    labels = validation.labels
    stored = [[v.numpy() for v in (layer.moving_mean, layer.moving_variance)] for layer in layers]

    moving = _score(model, full_validation, labels)
    # The run's own training images (its train_images subset): what its weights were fit to.
    subset = stratified_subset(train.labels, train_images, seed)
    training_batches = PackedBatches(train, batch_size, indices=subset, shuffle=True, seed=seed)
    recompute_statistics(model, training_batches, augment=True)
    recomputed = _score(model, full_validation, labels)
    plain = recomputed
    if augment is not None:
        for layer, (mean, variance) in zip(layers, stored):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        recompute_statistics(model, training_batches, augment=False)
        plain = _score(model, full_validation, labels)
    log.info(
        "validation loss with moving BN statistics %.4f, recomputed on augmented %.4f, "
        "on un-augmented training batches %.4f",
        moving["loss"],
        recomputed["loss"],
        plain["loss"],
    )
    lag = _discordant(recomputed["correct"], moving["correct"])
    shift = _discordant(plain["correct"], recomputed["correct"])
    return {
        "val_loss_moving": moving["loss"],
        "val_loss_recomputed": recomputed["loss"],
        "val_loss_recomputed_plain": plain["loss"],
        "val_accuracy_moving": float(moving["correct"].mean()),
        "val_accuracy_recomputed": float(recomputed["correct"].mean()),
        "val_accuracy_recomputed_plain": float(plain["correct"].mean()),
        "only_recomputed_right": lag[0],
        "only_moving_right": lag[1],
        "only_plain_right": shift[0],
        "only_augmented_right": shift[1],
        "validation_images": int(len(labels)),
        "batchnorm_momentum": float(max(layer.momentum for layer in layers)),
        "augmented": augment is not None,
        "interpolation": augment.interpolation if augment is not None else None,
    }
