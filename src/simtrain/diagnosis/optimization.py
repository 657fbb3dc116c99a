"""UNSTABLE_OPTIMIZATION: diverged training, or batch-loss spikes beyond their sampling spread."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped, finite_column

# Batch-loss spikes are judged against the sampling spread of a mini-batch mean: on a log scale
# (a batch mean of per-image cross-entropies is right-skewed; its log is nearly symmetric), each
# batch's distance from the rolling median of its neighbours is divided by the robust spread
# (1.4826 x median absolute deviation) of those distances within its epoch. A batch is a spike
# when its one-sided normal p-value, Bonferroni-corrected over all batches counted, is below
# SPIKE_ALPHA, and it is at least SPIKE_MIN_RATIO times the median and SPIKE_MIN_EXCESS nats above
# it (near zero loss one wrong image makes a large ratio). Real batch losses are heavy-tailed: a
# clean small CNN's batches of 32 reach 1.8-2.3x their rolling median now and then, so one or two
# such batches are no instability; MIN_SPIKES of them are needed.
SPIKE_WINDOW_BATCHES = 21
SPIKE_ALPHA = 0.01
SPIKE_MIN_RATIO = 2.0
SPIKE_MIN_EXCESS = 0.1
MIN_SPIKES = 3
MAD_TO_SD = 1.4826
# Warm-up excluded from the batch checks: the first epoch, or this share of a single epoch.
WARMUP_FRACTION = 0.2
MIN_BATCHES_AFTER_WARMUP = 10
# Batches per epoch needed to estimate the within-epoch spread; fewer: pooled over the run.
MIN_BATCHES_FOR_SPREAD = 8


def _lower_learning_rate(
    history: pd.DataFrame, settings: RunSettings, factor: float
) -> tuple[str, dict | None]:
    """The advice, and its first half as a config change when the learning rate is known."""
    lr = settings.learning_rate
    if lr is None and finite_column(history, "learning_rate").size:
        lr = float(finite_column(history, "learning_rate")[-1])
    target = f" from {lr:.2g} to about {lr / factor:.2g}" if lr else ""
    text = (
        f"lower {settings.key('learning_rate')}{target}, or raise "
        f"{settings.key('batch_size')} (now {settings.batch_size})"
    )
    return text, ({"learning_rate": float(f"{lr / factor:.2g}")} if lr else None)


def _within_epoch_spread(
    residual: np.ndarray, epochs: np.ndarray, counted: np.ndarray
) -> np.ndarray:
    """Per batch: the robust spread of log-loss residuals within its epoch (pooled if short)."""
    pooled = MAD_TO_SD * stats.median_abs_deviation(residual[counted])
    spread = np.full(residual.size, pooled)
    for epoch in np.unique(epochs):
        rows = (epochs == epoch) & counted
        if rows.sum() >= MIN_BATCHES_FOR_SPREAD:
            spread[epochs == epoch] = MAD_TO_SD * stats.median_abs_deviation(residual[rows])
    return spread


@dataclass(frozen=True)
class Spikes:
    """Per batch: whether it spikes, its z and its rolling median; the z limit and how many
    batches after warm-up were counted."""

    is_spike: np.ndarray
    z: np.ndarray
    median: np.ndarray
    z_limit: float
    counted: int


def find_spikes(loss: np.ndarray, epochs: np.ndarray) -> Spikes | None:
    """Which batches (in step order) are loss spikes (see the module constants); None with
    fewer than MIN_BATCHES_AFTER_WARMUP batches after warm-up."""
    loss, epochs = np.asarray(loss, float), np.asarray(epochs)
    if len(np.unique(epochs)) > 1:
        after_warmup = epochs > epochs.min()
    else:
        after_warmup = np.arange(loss.size) >= math.ceil(WARMUP_FRACTION * loss.size)
    counted = int(after_warmup.sum())
    if counted < MIN_BATCHES_AFTER_WARMUP:
        return None
    log_loss = np.log(np.maximum(loss, 1e-12))
    window = pd.Series(log_loss).rolling(SPIKE_WINDOW_BATCHES, center=True, min_periods=1)
    median = np.exp(window.median().to_numpy())
    residual = log_loss - np.log(median)
    spread = _within_epoch_spread(residual, epochs, after_warmup)
    z_limit = float(stats.norm.isf(SPIKE_ALPHA / counted))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(spread > 0, residual / spread, 0.0)
    is_spike = after_warmup & (z > z_limit) & (loss - median > SPIKE_MIN_EXCESS)
    is_spike &= loss >= SPIKE_MIN_RATIO * median
    return Spikes(is_spike, z, median, z_limit, counted)


def spike_rate(batches: pd.DataFrame) -> tuple[int, int] | None:
    """(spikes, batches counted after warm-up) of a run's batches.tsv; None if too few."""
    frame = batches.sort_values("step", kind="stable") if "step" in batches else batches
    loss = pd.to_numeric(frame["loss"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(loss).all():
        return None
    found = find_spikes(loss, frame["epoch"].to_numpy())
    return None if found is None else (int(found.is_spike.sum()), found.counted)


def check_unstable_optimization(
    batches: pd.DataFrame | None, history: pd.DataFrame, settings: RunSettings
) -> Finding | Skipped | None:
    code = "UNSTABLE_OPTIMIZATION"
    if batches is not None and "loss" not in batches.columns:
        raise ValueError(f"batches has no 'loss' column; got {list(batches.columns)}")
    frame = history if batches is None else batches
    if "step" in frame.columns:
        frame = frame.sort_values("step", kind="stable")
    loss = pd.to_numeric(frame["loss"], errors="coerce").to_numpy(dtype=float)
    epochs = frame["epoch"].to_numpy() if "epoch" in frame.columns else np.ones(loss.size)
    bad = ~np.isfinite(loss)
    if bad.any():
        first = int(epochs[np.argmax(bad)])
        return Finding(
            code,
            "critical",
            "Training loss became NaN or infinite",
            {"first_nonfinite_epoch": first, "nonfinite_values": int(bad.sum())},
            f"The training loss stopped being a finite number in epoch {first}: the weights "
            f"diverged, and every later point of every curve is meaningless.",
            *_lower_learning_rate(history, settings, 10),
        )
    if batches is None:
        return Skipped(code, "no per-batch losses (batches.tsv) to find spikes in")
    found = find_spikes(loss, epochs)
    if found is None:
        return Skipped(code, f"fewer than {MIN_BATCHES_AFTER_WARMUP} batches after warm-up")
    is_spike, z, median, z_limit = found.is_spike, found.z, found.median, found.z_limit
    counted, spikes = found.counted, int(is_spike.sum())
    if spikes < MIN_SPIKES:
        return None
    largest = float(np.max(loss[is_spike] / median[is_spike]))
    optimizer = f" ({settings.optimizer})" if settings.optimizer else ""
    return Finding(
        code,
        "warning",
        "Training steps are unstable: batch losses spike beyond their sampling spread",
        {
            "batches_after_warmup": counted,
            "spikes": spikes,
            "spike_fraction": spikes / counted,
            "spike_z_limit": z_limit,
            "spike_alpha": SPIKE_ALPHA,
            "largest_spike_z": float(z[is_spike].max()),
            "largest_loss_to_median_ratio": largest,
            "batch_size": settings.batch_size,
        },
        f"After warm-up, {spikes} of {counted} batches had a loss up to {largest:.1f}× the "
        f"rolling median of their neighbours, {z[is_spike].max():.1f} robust standard "
        f"deviations of the batch-to-batch spread of their epoch; beyond {z_limit:.1f} a batch "
        f"of {settings.batch_size} images is not sampling scatter (p < {SPIKE_ALPHA:g} over all "
        f"{counted} batches). Steps this erratic{optimizer} throw the weights around, so the "
        f"model validated at the end of each epoch differs more than its progress suggests.",
        *_lower_learning_rate(history, settings, 3),
    )
