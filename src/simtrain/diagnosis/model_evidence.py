"""Evidence from the trained model: which BatchNorm statistics explain its validation score.

The same weights are scored on the full validation set with different BN statistics:

1. the moving statistics stored in the model (what training's validation used);
2. statistics recomputed over *augmented* training batches of the run's own size: the inputs
   the weights were trained on. 1 vs 2 is BatchNorm lag (moving averages trailing the
   weights, noisy for small batches);
3. the same over *un-augmented* training batches: inputs like validation's. 2 vs 3 is an
   augmentation-induced shift (an interpolating warp smooths training images' pixel noise,
   so statistics that fit training mis-normalise validation);
4. population statistics of the same inputs as 2 (the statistics of one very large batch):
   1 vs 4 shows a small-batch mismatch that recomputing at the run's own batch size cannot
   (a batch of 2 sees half the spread between images).

A recomputation depends on which training images were drawn, so each comparison carries
its bootstrap spread over the batches (`BOOTSTRAPS` resamples) beside the images' paired
variance. `epoch_evidence` repeats 1 vs 3 at chosen epochs from the per-epoch weights
training keeps for small models, so jumps are attributed where they happen.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import keras
import numpy as np
from scipy.stats import norm

from simtrain.data.arrays import PackedSplit, stratified_subset
from simtrain.training import layers as _custom_layers  # noqa: F401 - registers them for load_model
from simtrain.training.batches import PackedBatches
from simtrain.training.epoch_weights import epoch_weights_path
from simtrain.training.precise_bn import (
    BatchStatistics,
    assign_statistics,
    batchnorm_layers,
    collect_batch_statistics,
    read_statistics,
)
from simtrain.training.tables import per_image_scores

log = logging.getLogger(__name__)

# Bootstrap resamples of the recomputation's batches: enough for a spread, each costing one
# pass over the validation set.
BOOTSTRAPS = 4
BOOTSTRAP_SEED = 7


class _Scorer:
    """Scores the model on the full validation set with given BN statistics."""

    def __init__(self, model: keras.Model, validation: PackedSplit, batch_size: int):
        self.model, self.layers = model, batchnorm_layers(model)
        self.data = PackedBatches(validation, batch_size, shuffle=False)
        self.labels = validation.labels

    def __call__(self, statistics=None) -> tuple[np.ndarray, float]:
        """(per-image right/wrong, mean loss) with `statistics` assigned (None: as they are)."""
        if statistics is not None:
            assign_statistics(self.layers, statistics)
        loss, correct = per_image_scores(self.model.predict(self.data, verbose=0), self.labels)
        return correct, float(loss.mean())


def _bootstrap_counts(batches: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence(BOOTSTRAP_SEED, spawn_key=(seed,)))
    return [
        np.bincount(rng.integers(0, batches, batches), minlength=batches) for _ in range(BOOTSTRAPS)
    ]


def paired_gap(better: np.ndarray, worse: np.ndarray, bootstrap_gaps: list[float]) -> dict:
    """Gap in accuracy (better minus worse), its SE from the images (paired) and from the
    recomputation's bootstrap, and the one-sided p-value that it is positive."""
    difference = better.astype(float) - worse.astype(float)
    gap = float(difference.mean())
    images = float(difference.var(ddof=1) / difference.size) if difference.size > 1 else 0.0
    spread = float(np.var(bootstrap_gaps, ddof=1)) if len(bootstrap_gaps) > 1 else 0.0
    se = math.sqrt(images + spread)
    p_value = float(norm.sf(gap / se)) if se > 0 else (0.0 if gap > 0 else 1.0)
    return {"gap": gap, "se": se, "bootstrap_sd": math.sqrt(spread), "p": p_value}


def _recomputed(
    scorer: _Scorer, statistics: BatchStatistics, counts: list[np.ndarray], population: bool
) -> tuple[tuple[np.ndarray, float], list[np.ndarray]]:
    """Scores with all batches averaged, and the per-image results of each bootstrap."""
    full = scorer(statistics.averaged(population=population))
    resampled = [scorer(statistics.averaged(c, population=population))[0] for c in counts]
    return full, resampled


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

    Keys: val_{loss,accuracy}_{moving,recomputed,recomputed_plain,population}, the discordant
    image counts, each comparison's gap/SE/p (lag_*, shift_*, population_*), the largest BN
    momentum, and the augmentation in the model.
    """
    model = keras.models.load_model(model_path, custom_objects=custom_objects)
    layers = batchnorm_layers(model)
    if not layers:
        return None
    names = {layer.name for layer in model.layers}
    augment = model.get_layer("augment") if "augment" in names else None
    train, validation = PackedSplit.load(train_dir), PackedSplit.load(validation_dir)
    scorer = _Scorer(model, validation, batch_size)
    stored = read_statistics(layers)
    moving = scorer()
    # The run's own training images (its train_images subset): what its weights were fit to.
    subset = stratified_subset(train.labels, train_images, seed)
    training_batches = PackedBatches(train, batch_size, indices=subset, shuffle=True, seed=seed)
    plain_statistics = collect_batch_statistics(model, training_batches, augment=False)
    counts = _bootstrap_counts(plain_statistics.batches, seed)
    plain, plain_boot = _recomputed(scorer, plain_statistics, counts, population=False)
    augmented, augmented_boot = plain, plain_boot
    augmented_statistics, augmented_counts = plain_statistics, counts
    if augment is not None:
        augmented_statistics = collect_batch_statistics(model, training_batches, augment=True)
        augmented_counts = _bootstrap_counts(augmented_statistics.batches, seed + 1)
        augmented, augmented_boot = _recomputed(
            scorer, augmented_statistics, augmented_counts, population=False
        )
    # Population statistics of the inputs training normalised (augmented where the model
    # augments), so that they differ from the stored ones by batch size alone: from
    # un-augmented inputs they would also carry the augmentation shift.
    population, population_boot = _recomputed(
        scorer, augmented_statistics, augmented_counts, population=True
    )
    assign_statistics(layers, stored)

    def gaps(better, worse, better_boot, worse_boot=None):
        worse_boot = worse_boot or [worse[0]] * len(better_boot)
        boot = [float(b.mean() - w.mean()) for b, w in zip(better_boot, worse_boot)]
        return paired_gap(better[0], worse[0], boot)

    lag = gaps(augmented, moving, augmented_boot)
    shift = gaps(plain, augmented, plain_boot, augmented_boot)
    small_batch = gaps(population, moving, population_boot)
    log.info(
        "validation accuracy with moving BN statistics %.4f, recomputed on augmented %.4f, "
        "on un-augmented training batches %.4f, population %.4f",
        moving[0].mean(),
        augmented[0].mean(),
        plain[0].mean(),
        population[0].mean(),
    )
    evidence = {
        "val_loss_moving": moving[1],
        "val_loss_recomputed": augmented[1],
        "val_loss_recomputed_plain": plain[1],
        "val_loss_population": population[1],
        "val_accuracy_moving": float(moving[0].mean()),
        "val_accuracy_recomputed": float(augmented[0].mean()),
        "val_accuracy_recomputed_plain": float(plain[0].mean()),
        "val_accuracy_population": float(population[0].mean()),
        "only_recomputed_right": int(np.sum(augmented[0] & ~moving[0])),
        "only_moving_right": int(np.sum(~augmented[0] & moving[0])),
        "only_plain_right": int(np.sum(plain[0] & ~augmented[0])),
        "only_augmented_right": int(np.sum(~plain[0] & augmented[0])),
        "validation_images": int(len(validation.labels)),
        "batchnorm_momentum": float(max(layer.momentum for layer in layers)),
        "augmented": augment is not None,
        "interpolation": augment.interpolation if augment is not None else None,
        "recompute_batches": plain_statistics.batches,
        "batch_size": batch_size,
        "bootstraps": BOOTSTRAPS,
    }
    for name, result in (("lag", lag), ("shift", shift), ("population", small_batch)):
        evidence |= {f"{name}_{key}": value for key, value in result.items()}
    return evidence


def epoch_evidence(
    model_path: str | os.PathLike,
    run_dir: str | os.PathLike,
    train_dir: str | os.PathLike,
    validation_dir: str | os.PathLike,
    *,
    epochs: list[int],
    batch_size: int,
    seed: int,
    train_images: int | None = None,
    custom_objects: dict[str, type] | None = None,
) -> dict[str, list] | None:
    """Per epoch (1-based numbers): validation accuracy with the stored statistics and with
    statistics recomputed over un-augmented training batches (precise BN), from the weights
    training kept after each epoch. None without BN layers or without those weights."""
    paths = [epoch_weights_path(run_dir, epoch) for epoch in epochs]
    if not epochs or not all(Path(p).exists() for p in paths):
        return None
    model = keras.models.load_model(model_path, custom_objects=custom_objects)
    layers = batchnorm_layers(model)
    if not layers:
        return None
    train, validation = PackedSplit.load(train_dir), PackedSplit.load(validation_dir)
    scorer = _Scorer(model, validation, batch_size)
    subset = stratified_subset(train.labels, train_images, seed)
    stored, precise = [], []
    for path in paths:
        model.load_weights(path)
        stored.append(float(scorer()[0].mean()))
        # The same training batches at every epoch: the recomputation's own randomness then
        # does not add movement between epochs.
        batches = PackedBatches(train, batch_size, indices=subset, shuffle=True, seed=seed)
        statistics = collect_batch_statistics(model, batches, augment=False)
        precise.append(float(scorer(statistics.averaged())[0].mean()))
    return {"epochs": list(epochs), "stored": stored, "precise_bn": precise}
