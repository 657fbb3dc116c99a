"""UNSTABLE_OPTIMIZATION: diverged training, or batch-loss spikes spread over the run."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped, finite_column

# A batch-loss spike is a batch whose loss is at least SPIKE_MIN_RATIO times the rolling median
# of its SPIKE_WINDOW_BATCHES neighbours (on a log scale: a batch mean of cross-entropies is
# right-skewed) and SPIKE_MIN_EXCESS nats above it (near zero loss one wrong image makes a large
# ratio). Real batch losses are heavy-tailed: a clean small CNN's batches of 32 reach 1.8-2.3x
# their rolling median now and then, within one epoch or two of a run; steps too large for the
# loss surface do it again and again. So the finding needs spikes in MIN_SPIKE_EPOCHS different
# epochs after warm-up (the first fifth of the epochs, as for the validation curve).
SPIKE_WINDOW_BATCHES = 21
SPIKE_MIN_RATIO = 2.0
SPIKE_MIN_EXCESS = 0.1
MIN_SPIKE_EPOCHS = 3
# Spikes in fewer epochs are ordinary alone (in exactly 2 epochs: 12 of the 240 clean runs of
# rounds 2 and 3; in 1: 55), but they are the evidence of unstable steps that a curve already moving
# beyond its noise has: spikes in SUPPORTING_SPIKE_EPOCHS epochs are an info finding, which
# claims such a curve's movement when no other evidence does (attribution.py) and then warns.
SUPPORTING_SPIKE_EPOCHS = 2
# ...and unusual for its epoch: SPIKE_MIN_Z robust standard deviations (1.4826 x median absolute
# deviation of the epoch's log-loss residuals) above the median, so that small batches, whose
# losses scatter widely anyway, do not count every hard batch.
SPIKE_MIN_Z = 3.0
MAD_TO_SD = 1.4826
MIN_BATCHES_FOR_SPREAD = 8
# Warm-up: the first fifth of the epochs (at least one), or of the batches of a one-epoch run.
WARMUP_FRACTION = 0.2
MIN_BATCHES_AFTER_WARMUP = 10


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


def _calmer_steps(history: pd.DataFrame, settings: RunSettings) -> tuple[str, dict | None]:
    """Spikes: a constant rate decays (cosine: large steps while far from a minimum, small ones
    near it), else a third of the rate."""
    if settings.lr_schedule == "none":
        return (
            f"decay the learning rate: set {settings.key('lr_schedule')}: {{kind: cosine}} (or "
            f"lower {settings.key('learning_rate')}, or raise {settings.key('batch_size')}, now "
            f"{settings.batch_size})",
            {"lr_schedule": {"kind": "cosine"}},
        )
    return _lower_learning_rate(history, settings, 3)


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
    """Per batch: whether it spikes and its rolling median; how many batches were counted and
    in how many epochs spikes occurred."""

    is_spike: np.ndarray
    median: np.ndarray
    counted: int
    epochs: int


def find_spikes(loss: np.ndarray, epochs: np.ndarray) -> Spikes | None:
    """Which batches (in step order) are loss spikes (see the module constants); None with
    fewer than MIN_BATCHES_AFTER_WARMUP batches after warm-up."""
    loss, epochs = np.asarray(loss, float), np.asarray(epochs)
    numbers = np.unique(epochs)
    if len(numbers) > 1:
        warmup = max(1, int(len(numbers) * WARMUP_FRACTION))
        after_warmup = epochs > numbers[warmup - 1]
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
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(spread > 0, residual / spread, np.inf)
    is_spike = after_warmup & (loss >= SPIKE_MIN_RATIO * median) & (z >= SPIKE_MIN_Z)
    is_spike &= loss - median > SPIKE_MIN_EXCESS
    spread = len(np.unique(epochs[is_spike])) if len(numbers) > 1 else int(is_spike.sum())
    return Spikes(is_spike, median, counted, spread)


def spike_rate(batches: pd.DataFrame) -> tuple[int, int] | None:
    """(spikes, batches counted after warm-up) of a run's batches.tsv; None if too few."""
    frame = batches.sort_values("step", kind="stable") if "step" in batches else batches
    loss = pd.to_numeric(frame["loss"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(loss).all():
        return None
    found = find_spikes(loss, frame["epoch"].to_numpy())
    return None if found is None else (int(found.is_spike.sum()), found.counted)


def check_unstable_optimization(
    batches: pd.DataFrame | None,
    history: pd.DataFrame,
    settings: RunSettings,
    claims_movement: bool = False,
) -> Finding | Skipped | None:
    """Divergence (critical), spikes in MIN_SPIKE_EPOCHS epochs (warning), or in
    SUPPORTING_SPIKE_EPOCHS (info; a warning with `claims_movement`: they claimed the movement
    of a curve beyond its noise)."""
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
    is_spike, median, counted = found.is_spike, found.median, found.counted
    spikes = int(is_spike.sum())
    if found.epochs < SUPPORTING_SPIKE_EPOCHS:
        return None
    largest = float(np.max(loss[is_spike] / median[is_spike]))
    optimizer = f" ({settings.optimizer})" if settings.optimizer else ""
    evidence = {
        "batches_after_warmup": counted,
        "spikes": spikes,
        "spike_epochs": found.epochs,
        "spike_fraction": spikes / counted,
        "largest_loss_to_median_ratio": largest,
        "batch_size": settings.batch_size,
        "claims_movement": claims_movement,
    }
    seen = (
        f"After warm-up, {spikes} of {counted} batches, in {found.epochs} different epochs, had "
        f"a loss of at least {SPIKE_MIN_RATIO:g}× the rolling median of their neighbours (up "
        f"to {largest:.1f}×)."
    )
    cause = (
        f"steps{optimizer} too large for the loss surface, which throw the weights around, so "
        f"the model validated at the end of each epoch differs more than its progress suggests."
    )
    if found.epochs >= MIN_SPIKE_EPOCHS:
        title = "Training steps are unstable: batch losses spike again and again"
        text = f"{seen} A hard batch now and then is ordinary; spikes again and again mean {cause}"
    elif claims_movement:
        title = "Training steps are unstable: the curve moves beyond its noise, and batches spike"
        text = (
            f"{seen} Alone that is ordinary (fewer than {MIN_SPIKE_EPOCHS} epochs), but the "
            f"validation curve moves beyond its noise and no other evidence explains it: the "
            f"likeliest cause is {cause}"
        )
    else:
        return Finding(
            code,
            "info",
            f"Batch losses spiked in {found.epochs} epochs (ordinary alone)",
            evidence,
            f"{seen} Spikes in fewer than {MIN_SPIKE_EPOCHS} epochs are ordinary; they count "
            f"as evidence of unstable steps only for a curve that moves beyond its noise.",
            "nothing to change",
        )
    return Finding(code, "warning", title, evidence, text, *_calmer_steps(history, settings))
