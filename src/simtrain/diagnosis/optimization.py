"""UNSTABLE_OPTIMIZATION: diverged or erratic training steps, from per-batch losses."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped, finite_column

# Batch-loss spikes: a batch whose loss is 3x the rolling median of its neighbours (and at least
# 0.1 nats above it, so that near-zero losses do not count) is beyond the ordinary scatter of a
# mini-batch mean; more than 1 % of post-warm-up batches spiking means the step size is too big.
SPIKE_WINDOW_BATCHES = 21
SPIKE_FACTOR = 3.0
SPIKE_MIN_EXCESS = 0.1
SPIKE_FRACTION_LIMIT = 0.01
# Warm-up excluded from the batch checks: the first epoch, or this share of a single epoch.
WARMUP_FRACTION = 0.2
MIN_BATCHES_AFTER_WARMUP = 10
# Coefficient of variation of batch loss around its rolling median: batches straying by as much
# as the loss itself. The denominator is at least 0.1 nats, because near zero loss a single
# misclassified image makes any relative spread large without the training being unstable.
BATCH_LOSS_CV_LIMIT = 1.0
BATCH_LOSS_FLOOR = 0.1


def _lower_learning_rate(history: pd.DataFrame, settings: RunSettings, factor: float) -> str:
    lr = settings.learning_rate
    if lr is None and finite_column(history, "learning_rate").size:
        lr = float(finite_column(history, "learning_rate")[-1])
    target = f" from {lr:.2g} to about {lr / factor:.2g}" if lr else ""
    return (
        f"lower {settings.key('learning_rate')}{target}, or raise "
        f"{settings.key('batch_size')} (now {settings.batch_size})"
    )


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
            _lower_learning_rate(history, settings, 10),
        )
    if batches is None:
        return Skipped(code, "no per-batch losses (batches.tsv) to find spikes in")
    if len(np.unique(epochs)) > 1:
        after_warmup = epochs > epochs.min()
    else:
        after_warmup = np.arange(loss.size) >= math.ceil(WARMUP_FRACTION * loss.size)
    counted = int(after_warmup.sum())
    if counted < MIN_BATCHES_AFTER_WARMUP:
        return Skipped(
            code, f"only {counted} batches after warm-up, fewer than {MIN_BATCHES_AFTER_WARMUP}"
        )
    window = pd.Series(loss).rolling(SPIKE_WINDOW_BATCHES, center=True, min_periods=1)
    median = window.median().to_numpy()
    residual = loss - median
    spikes = int(
        (after_warmup & (loss > SPIKE_FACTOR * median) & (residual > SPIKE_MIN_EXCESS)).sum()
    )
    scatter = np.std(residual[after_warmup]) / max(np.mean(loss[after_warmup]), BATCH_LOSS_FLOOR)
    if spikes / counted <= SPIKE_FRACTION_LIMIT and scatter <= BATCH_LOSS_CV_LIMIT:
        return None
    largest = float(np.max(loss[after_warmup] / np.maximum(median[after_warmup], 1e-12)))
    optimizer = f" ({settings.optimizer})" if settings.optimizer else ""
    return Finding(
        code,
        "warning",
        "Training steps are unstable: batch losses spike and scatter",
        {
            "batches_after_warmup": counted,
            "spikes": spikes,
            "spike_fraction": spikes / counted,
            "spike_fraction_limit": SPIKE_FRACTION_LIMIT,
            "spike_factor": SPIKE_FACTOR,
            "largest_loss_to_median_ratio": largest,
            "batch_loss_cv": scatter,
            "batch_loss_cv_limit": BATCH_LOSS_CV_LIMIT,
            "batch_size": settings.batch_size,
        },
        f"After warm-up, {spikes} of {counted} batches ({spikes / counted:.1%}) had a loss over "
        f"{SPIKE_FACTOR:g}× the rolling median of their neighbours (up to {largest:.1f}×), and "
        f"batch losses scatter around that median by {scatter:.2f} of the mean loss. Steps this "
        f"erratic{optimizer} throw the weights around, so the model validated at the end of "
        f"each epoch differs more than its progress would suggest.",
        _lower_learning_rate(history, settings, 3),
    )
