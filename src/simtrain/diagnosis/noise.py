"""The noise model of a validation curve, and the verdict it supports.

Assumptions, stated in every explanation as well:

- Fixed validation set (validation_steps null, or the same images every epoch): there is no
  sampling noise between epochs; consecutive epochs differ only because the model changed. With
  the per-epoch validation record that change is measured directly (churn between epochs, an
  exact McNemar test per pair, the paired glitch test of `curve_tests`). Without it (a CSVLogger
  file) the binomial standard error of a freshly drawn set of the same size stands in as a
  conservative yardstick: a fixed set moves less than that unless the model jumps.
- Shuffled partial validation: each epoch scores a different random m of the N images, drawn
  without replacement, so the standard error of an epoch's accuracy is binomial times the
  finite-population factor √((N−m)/(N−1)).
- Per-epoch errors are independent; the smooth trend is a + b·exp(−t/τ) + c·t (`curve_tests`).
- Epochs: the one-epoch glitch test needs 3 (a neighbour on each side), the dispersion test 8
  (4 degrees of freedom beyond the 4 trend parameters).

One metric drives the verdict: val_accuracy. Its standard error follows from the number of
images scored alone (known from a CSVLogger file too), and a glitch in accuracy is a change of
which images the model gets right. val_loss is reported with its per-epoch standard error from
the record's per-image losses of that epoch, but it is dominated by a few confidently wrong
images and is not used for the verdict. The fluctuation score is observed / expected noise
(√(χ²/degrees of freedom) around the trend): ≈1 noise, ≫1 something else; the verdict comes from
the p-values, at ALPHA each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simtrain.diagnosis.curve_tests import (
    MIN_EPOCHS_FOR_OUTLIERS,
    Churn,
    Dispersion,
    Glitch,
    churn,
    neighbour_glitch,
    paired_glitch,
    trend_dispersion,
)
from simtrain.diagnosis.findings import RunSettings, Skipped, finite_column
from simtrain.diagnosis.validation_record import ValidationRecord

SAMPLING_NOISE = "VALIDATION_SAMPLING_NOISE"
# Significance level of each test (dispersion; glitch after Bonferroni): two tests at 1 % keep
# the false-alarm rate on clean curves under 2 % when the model holds.
ALPHA = 0.01
# Turns a median absolute deviation into a standard deviation for normally distributed noise.
MAD_TO_SD = 1.4826
# Findings that can make a validation curve jump between epochs. Not PARTIAL_EPOCH (short epochs
# change the x-axis, not the noise of one evaluation) nor CLASS_IMBALANCE (a steady bias) nor
# OVERFITTING (a trend). PARTIAL_VALIDATION only when shuffled (its sampling noise).
FLUCTUATION_CAUSES = (
    "PARTIAL_VALIDATION",
    "BATCHNORM_STATISTICS",
    "AUGMENTATION_SHIFT",
    "UNSTABLE_OPTIMIZATION",
)


@dataclass(frozen=True)
class NoiseEstimate:
    """A validation curve with its per-epoch standard errors and the tests against them."""

    epochs: int
    epoch_numbers: np.ndarray
    accuracy: np.ndarray
    accuracy_se: np.ndarray
    images_scored: int  # median per epoch (m)
    validation_images: int  # N
    fixed_set: bool
    finite_population_factor: float
    from_record: bool
    dispersion: Dispersion | None
    glitch: Glitch | None
    churn: Churn | None
    loss_se: float | None  # median per-epoch standard error of val_loss
    loss_se_source: str | None  # "record" | "final model"
    loss_observed: float | None  # robust epoch-to-epoch spread of val_loss

    @property
    def metric(self) -> str:
        return "accuracy"

    @property
    def score(self) -> float | None:
        """Observed / expected noise of val_accuracy (≈1 noise, ≫1 the model jumps)."""
        if self.dispersion is not None:
            return self.dispersion.ratio
        # 3-4 epochs: each epoch's distance from the chord of its neighbours, in standard errors.
        y, s = self.accuracy, self.accuracy_se
        if y.size < MIN_EPOCHS_FOR_OUTLIERS:
            return None
        chord = y[1:-1] - (y[:-2] + y[2:]) / 2
        spread = np.sqrt(s[1:-1] ** 2 + (s[:-2] ** 2 + s[2:] ** 2) / 4)
        return float(np.sqrt(np.mean((chord / spread) ** 2)))

    @property
    def dispersion_rejects(self) -> bool:
        p = None if self.dispersion is None else self.dispersion.p_value
        return p is not None and p < ALPHA

    @property
    def glitch_rejects(self) -> bool:
        return self.glitch is not None and self.glitch.p_adjusted < ALPHA

    @property
    def beyond_band(self) -> bool:
        return self.dispersion_rejects or self.glitch_rejects

    @property
    def loss_band(self) -> float | None:
        """Noise of val_loss for trend checks: the larger of its standard error and spread."""
        values = [v for v in (self.loss_se, self.loss_observed) if v is not None]
        return max(values) if values else None


def detrended_noise(values: np.ndarray) -> float | None:
    """Robust per-epoch spread of a curve (median absolute deviation of first differences / √2)."""
    if values.size < MIN_EPOCHS_FOR_OUTLIERS:
        return None
    differences = np.diff(values)
    mad = np.median(np.abs(differences - np.median(differences)))
    return float(MAD_TO_SD * mad / math.sqrt(2))


def images_scored_per_epoch(history: pd.DataFrame, settings: RunSettings) -> int | None:
    """Validation images scored per epoch: logged by our training stage, else from the settings."""
    seen = finite_column(history, "validation_images_seen")
    if seen.size and np.median(seen) > 0:
        return int(np.median(seen))
    if settings.validation_images <= 0:
        return None
    if settings.validation_steps is None:
        return settings.validation_images
    return min(settings.validation_steps * settings.batch_size, settings.validation_images)


def binomial_se(accuracy: np.ndarray, scored: np.ndarray, factor: float) -> np.ndarray:
    """Binomial standard error; p from (right + 1)/(m + 2) so that 0 % or 100 % keeps a width."""
    right = np.rint(accuracy * scored)
    p = (right + 1) / (scored + 2)
    return factor * np.sqrt(p * (1 - p) / scored)


def _record_curve(record: ValidationRecord, history: pd.DataFrame) -> dict:
    if record.epochs != len(history):
        raise ValueError(
            f"validation record has {record.epochs} epochs but the history {len(history)} rows"
        )
    scored = record.images_scored
    keep = scored > 0
    fixed = record.same_images_every_epoch
    m, n = int(np.median(scored[keep])) if keep.any() else 0, record.images
    factor = 1.0 if fixed else math.sqrt(max(n - m, 0) / max(n - 1, 1))
    loss_se = factor * record.loss_sd()[keep] / np.sqrt(scored[keep])
    correct = record.correct[keep]
    return {
        "epoch_numbers": history["epoch"].to_numpy()[keep],
        "accuracy": record.accuracy()[keep],
        "scored": scored[keep].astype(float),
        "images_scored": m,
        "validation_images": n,
        "fixed_set": fixed,
        "factor": factor,
        "churn": churn(correct),
        "paired": paired_glitch(correct) if fixed else None,
        "loss_se": float(np.nanmedian(loss_se)) if np.isfinite(loss_se).any() else None,
        "loss_se_source": "record",
        "loss": record.mean_loss()[keep],
    }


def _history_curve(
    history: pd.DataFrame, settings: RunSettings, predictions: pd.DataFrame | None
) -> dict | None:
    frame = history.assign(
        val_accuracy=pd.to_numeric(history.get("val_accuracy"), errors="coerce"),
        val_loss=pd.to_numeric(history.get("val_loss"), errors="coerce"),
    )
    frame = frame[np.isfinite(frame["val_accuracy"])]
    m, n = images_scored_per_epoch(history, settings), settings.validation_images
    if not m:
        return None
    fixed = not (settings.validation_shuffle and m < n)
    factor = 1.0 if fixed else math.sqrt((n - m) / (n - 1))
    per_image = finite_column(predictions, "loss")
    loss_se = None
    if per_image.size >= 2:
        loss_se = factor * float(np.std(per_image, ddof=1)) / math.sqrt(m)
    return {
        "epoch_numbers": frame["epoch"].to_numpy(),
        "accuracy": frame["val_accuracy"].to_numpy(dtype=float).clip(0, 1),
        "scored": np.full(len(frame), float(m)),
        "images_scored": m,
        "validation_images": n,
        "fixed_set": fixed,
        "factor": factor,
        "churn": None,
        "paired": None,
        "loss_se": loss_se,
        "loss_se_source": None if loss_se is None else "final model",
        "loss": finite_column(history, "val_loss"),
    }


def estimate_noise(
    history: pd.DataFrame,
    settings: RunSettings,
    predictions: pd.DataFrame | None,
    record: ValidationRecord | None = None,
) -> NoiseEstimate | Skipped:
    """The curve's per-epoch standard errors and tests; Skipped when it cannot be judged."""
    if record is not None:
        curve = _record_curve(record, history)
    else:
        curve = _history_curve(history, settings, predictions)
    epochs = 0 if curve is None else int(curve["accuracy"].size)
    if epochs < MIN_EPOCHS_FOR_OUTLIERS:
        reason = (
            f"{epochs} epoch(s) with a validation accuracy; judging noise needs at least "
            f"{MIN_EPOCHS_FOR_OUTLIERS} (an epoch with a neighbour on each side)"
        )
        if epochs == 0 and finite_column(history, "val_accuracy").size == 0:
            reason = "no finite val_accuracy: trained without validation data?"
        elif curve is None:
            reason = "the number of validation images scored per epoch is unknown"
        return Skipped(SAMPLING_NOISE, reason)
    accuracy = curve["accuracy"]
    se = binomial_se(accuracy, curve["scored"], curve["factor"])
    unpaired = neighbour_glitch(accuracy, se)
    return NoiseEstimate(
        epochs=epochs,
        epoch_numbers=curve["epoch_numbers"],
        accuracy=accuracy,
        accuracy_se=se,
        images_scored=curve["images_scored"],
        validation_images=curve["validation_images"],
        fixed_set=curve["fixed_set"],
        finite_population_factor=curve["factor"],
        from_record=record is not None,
        dispersion=trend_dispersion(accuracy, se),
        glitch=curve["paired"] or unpaired,
        churn=curve["churn"],
        loss_se=curve["loss_se"],
        loss_se_source=curve["loss_se_source"],
        loss_observed=detrended_noise(curve["loss"][np.isfinite(curve["loss"])]),
    )
