"""Precise BatchNorm statistics: what the moving averages should be for the final weights.

During training a BatchNormalization layer normalises each batch by that batch's own mean and
variance, and keeps exponential moving averages for inference. The averages trail weights
that keep changing, and are noisy for small batches; "precise BN" (as in pycls and detectron2)
replaces them after training by plain averages over many training batches passed through the
network in training mode, the weights untouched.

In training mode a BN layer's output depends only on its batch, never on its moving
statistics, so one pass can record every layer's per-batch statistics; any average of them
(all batches, or a bootstrap resample, to measure how much the result depends on which
images were drawn) can then be assigned without running the network again.
"""

from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass

import keras
import numpy as np
from tqdm import tqdm

from simtrain.training.batches import PackedBatches
from simtrain.training.models import apply_preprocessing, classifier_inputs, preprocessing

log = logging.getLogger(__name__)

# Statistics are averaged over at least 20 batches and 320 images: stable even for tiny
# batches, without a whole epoch of a large network on a CPU.
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


@dataclass(frozen=True)
class BatchStatistics:
    """Per BN layer, the (batches, channels) means and variances of each batch."""

    means: tuple[np.ndarray, ...]
    variances: tuple[np.ndarray, ...]

    @property
    def batches(self) -> int:
        return int(self.means[0].shape[0]) if self.means else 0

    def averaged(
        self, counts: np.ndarray | None = None, *, population: bool = False
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mean, variance) per layer averaged over the batches, each weighted by `counts`
        (how often a bootstrap resample drew it; None: every batch once).

        population=False averages the within-batch variances: what the weights saw in
        training, batch by batch. population=True adds the variance of the batch means (the
        law of total variance): the statistics of one very large batch, which differ from
        the first for small batches (a batch of 2 sees half the spread between images).
        """
        weights = np.ones(self.batches) if counts is None else np.asarray(counts, float)
        weights = weights / weights.sum()
        averaged = []
        for means, variances in zip(self.means, self.variances):
            mean = weights @ means
            variance = weights @ variances
            if population:
                variance = variance + weights @ (means - mean) ** 2
            averaged.append((mean, variance))
        return averaged


def statistics_batches(train: PackedBatches) -> int:
    """How many batches a recomputation averages over (MIN_BATCHES, MIN_IMAGES)."""
    return min(len(train), max(MIN_BATCHES, math.ceil(MIN_IMAGES / train.batch_size)))


class _BatchMoments(keras.Model):
    """uint8 images -> each BN layer's (1, channels) mean and variance over the batch, the
    classifier run in training mode (each BN layer normalising by its batch, as in training).

    `call` takes no `training` argument, so `predict`'s training=False never reaches the
    classifier: `predict` then compiles the whole pass for whichever backend runs.
    """

    def __init__(self, model: keras.Model, layers: list, *, augment: bool):
        super().__init__(name="batch_moments")
        # The layers, not `model`: the cache below holds this and must not keep `model` alive.
        self.preprocess = preprocessing(model, augment=augment)
        classifier = model.layers[-1]
        # The input each BN layer normalises, as outputs of the classifier's own graph.
        self.features = keras.Model(classifier.inputs, [layer.input for layer in layers])
        self.axes = [tuple(range(len(layer.input.shape) - 1)) for layer in layers]

    def call(self, images):
        features = self.features(apply_preprocessing(self.preprocess, images), training=True)
        if not isinstance(features, (list, tuple)):
            features = [features]
        moments = []
        for feature, axes in zip(features, self.axes):
            mean, variance = keras.ops.moments(keras.ops.cast(feature, "float32"), axes=axes)
            moments += [keras.ops.expand_dims(mean, 0), keras.ops.expand_dims(variance, 0)]
        return moments


# One compiled pass per (model, augment), reused: tracing costs more than a small pass.
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Fewer batches than this go eagerly: tracing ResNet50's pass took 8 s, about 18 eager
# batches of 8 images at 32x32 (a small CNN's trace: 0.3 s).
COMPILE_FROM_BATCHES = 16


def _compiled_moments(model: keras.Model, layers: list, augment: bool) -> keras.Model | None:
    """The compiled pass, or None where the classifier's BN inputs are not outputs of one
    functional graph (a subclassed plug-in, a nested or shared BN layer, channels first)."""
    passes = _compiled.setdefault(model, {})
    if augment not in passes:
        try:
            if not all(layer.axis in (-1, len(layer.input.shape) - 1) for layer in layers):
                raise ValueError("BatchNormalization over a non-last axis")
            passes[augment] = _BatchMoments(model, layers, augment=augment)
        except (ValueError, AttributeError) as error:
            log.debug("BN statistics computed eagerly: %s", error)
            passes[augment] = None
    return passes[augment]


def _eager_moments(model: keras.Model, layers: list, train: PackedBatches, count: int, augment):
    """The same per-batch statistics, one eager training-mode call per batch: BN momentum 0
    makes each layer's "moving" value its batch's own statistic."""
    momenta = [layer.momentum for layer in layers]
    means: list[list[np.ndarray]] = [[] for _ in layers]
    variances: list[list[np.ndarray]] = [[] for _ in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        for k in tqdm(range(count), desc=f"BN statistics, augment={augment}", mininterval=10):
            images, _ = train[k]
            model.layers[-1](classifier_inputs(model, images, augment=augment), training=True)
            for i, layer in enumerate(layers):
                means[i].append(keras.ops.convert_to_numpy(layer.moving_mean))
                variances[i].append(keras.ops.convert_to_numpy(layer.moving_variance))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return [np.stack(m) for m in means], [np.stack(v) for v in variances]


def collect_batch_statistics(
    model: keras.Model, train: PackedBatches, *, augment: bool, batches: int | None = None
) -> BatchStatistics:
    """Every BN layer's statistics on each of the first `batches` training batches (default:
    `statistics_batches`), fed through the model's preprocessing with or without its
    augmentation. The moving statistics are left as they were."""
    layers = batchnorm_layers(model)
    saved = read_statistics(layers)
    count = statistics_batches(train) if batches is None else min(batches, len(train))
    compiled = _compiled_moments(model, layers, augment) if count >= COMPILE_FROM_BATCHES else None
    try:
        if compiled is None:
            means, variances = _eager_moments(model, layers, train, count, augment)
        else:
            moments = compiled.predict(train, steps=count, verbose=0)
            means, variances = moments[0::2], moments[1::2]
    finally:
        assign_statistics(layers, saved)
    return BatchStatistics(
        means=tuple(np.asarray(m, np.float32) for m in means),
        variances=tuple(np.asarray(v, np.float32) for v in variances),
    )


def read_statistics(layers: list) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (keras.ops.convert_to_numpy(la.moving_mean), keras.ops.convert_to_numpy(la.moving_variance))
        for la in layers
    ]


def assign_statistics(layers: list, statistics: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for layer, (mean, variance) in zip(layers, statistics):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)


def recompute_statistics(model: keras.Model, train: PackedBatches, *, augment: bool) -> None:
    """Replace every BN layer's moving statistics by their average over training batches."""
    statistics = collect_batch_statistics(model, train, augment=augment)
    assign_statistics(batchnorm_layers(model), statistics.averaged())


# After training, precise BN averages over this many training images (detectron2's PreciseBN
# default: 200 iterations of 16 images), or the whole training subset when it is smaller.
FINAL_IMAGES = 3200


def apply_precise_statistics(model: keras.Model, train: PackedBatches) -> bool:
    """Give the final weights precise BN statistics from un-augmented training batches (what
    validation images look like); False when the model has no BatchNorm layer."""
    if not batchnorm_layers(model):
        return False
    batches = min(len(train), math.ceil(FINAL_IMAGES / train.batch_size))
    statistics = collect_batch_statistics(model, train, augment=False, batches=batches)
    assign_statistics(batchnorm_layers(model), statistics.averaged())
    return True
