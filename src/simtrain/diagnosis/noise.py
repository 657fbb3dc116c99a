"""The sampling-noise band of a validation curve, and the verdict it supports.

The centre is the sampling-noise band: the epoch-to-epoch noise a validation score must show
just because it averages over m images (binomial for accuracy, per-image loss spread for loss),
compared with the noise the curve really shows. The fluctuation score is their ratio: ~1 means
"as noisy as the validation-set size explains", >>1 means the model itself jumps around, and
the other checks say why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped, finite_column

# Fewer epochs cannot separate fluctuation from trend (it takes two first differences at least).
MIN_EPOCHS_FOR_NOISE = 3
# Turns a median absolute deviation into a standard deviation for normally distributed noise.
MAD_TO_SD = 1.4826
# Observed noise above twice the expected is "beyond the band": the robust estimate from 10-20
# epochs is uncertain by about +-30 %, so 2x is some three standard errors away.
NOISE_BAND_LIMIT = 2.0
SAMPLING_NOISE = "VALIDATION_SAMPLING_NOISE"
# Findings that can make a validation curve jump. Not PARTIAL_VALIDATION (the band already uses
# the images actually scored) nor OVERFITTING (a trend, not a fluctuation).
FLUCTUATION_CAUSES = "PARTIAL_EPOCH BATCHNORM_STATISTICS UNSTABLE_OPTIMIZATION CLASS_IMBALANCE"


@dataclass(frozen=True)
class NoiseEstimate:
    """Per-epoch noise of the validation curve: expected from the set size, observed in the curve.

    Observed noise is the robust spread of first differences: differences remove a slow trend,
    median and median absolute deviation ignore the few large steps of the epochs in which the
    model learns fastest, and /sqrt(2) because a difference of two noisy values has sqrt(2)
    times their spread. Expected noise treats the m images scored as a sample of the simulated
    population; with the same images every epoch it is an upper bound.
    """

    images_scored: int | None  # validation images scored per epoch (m)
    epochs: int
    accuracy_mean: float | None
    accuracy_expected: float | None  # sqrt(p(1-p)/m), root mean square over epochs
    accuracy_observed: float | None
    loss_per_image_sd: float | None  # of the final model on the full validation set
    loss_expected: float | None  # loss_per_image_sd / sqrt(m)
    loss_observed: float | None

    def ratio(self, metric: str) -> float | None:
        expected = getattr(self, f"{metric}_expected")
        observed = getattr(self, f"{metric}_observed")
        return None if not expected or observed is None else observed / expected

    @property
    def metric(self) -> str | None:
        """The metric of the fluctuation score: loss when it has a band, else accuracy."""
        return next((m for m in ("loss", "accuracy") if self.ratio(m) is not None), None)

    @property
    def score(self) -> float | None:
        return None if self.metric is None else self.ratio(self.metric)

    @property
    def beyond_band(self) -> bool:
        return any((self.ratio(m) or 0) > NOISE_BAND_LIMIT for m in ("loss", "accuracy"))


def detrended_noise(values: np.ndarray) -> float | None:
    """Per-epoch noise of a curve with its slow trend removed (see NoiseEstimate)."""
    if values.size < MIN_EPOCHS_FOR_NOISE:
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


def estimate_noise(
    history: pd.DataFrame, settings: RunSettings, predictions: pd.DataFrame | None
) -> NoiseEstimate | Skipped:
    accuracy = finite_column(history, "val_accuracy")
    loss = finite_column(history, "val_loss")
    epochs = max(accuracy.size, loss.size)
    if epochs < MIN_EPOCHS_FOR_NOISE:
        reason = f"{epochs} epoch(s) with a validation score, too few to tell noise from trend"
        if epochs == 0:
            reason = "no finite val_loss or val_accuracy: trained without validation data?"
        return Skipped(SAMPLING_NOISE, reason)
    m = images_scored_per_epoch(history, settings)
    p = np.clip(accuracy, 0.0, 1.0)
    per_image = finite_column(predictions, "loss")
    loss_sd = float(np.std(per_image, ddof=1)) if per_image.size >= 2 else None
    return NoiseEstimate(
        images_scored=m,
        epochs=epochs,
        accuracy_mean=float(p.mean()) if p.size else None,
        accuracy_expected=float(np.sqrt(np.mean(p * (1 - p)) / m)) if m and p.size else None,
        accuracy_observed=detrended_noise(accuracy),
        loss_per_image_sd=loss_sd,
        loss_expected=loss_sd / math.sqrt(m) if m and loss_sd is not None else None,
        loss_observed=detrended_noise(loss),
    )


def check_sampling_noise(
    noise: NoiseEstimate, settings: RunSettings, causes: list[str], unchecked: list[str]
) -> Finding | Skipped:
    """Observed vs expected noise; names the `causes` found (or the checks `unchecked`)."""
    if noise.score is None:
        return Skipped(
            SAMPLING_NOISE,
            "no expected noise: images scored per epoch unknown, or "
            "val_loss alone without per-image losses (predictions.tsv)",
        )
    m, beyond = noise.images_scored, noise.beyond_band
    evidence: dict = {
        "validation_images_scored_per_epoch": m,
        "epochs": noise.epochs,
        "band_limit": NOISE_BAND_LIMIT,
        "fluctuation_score": noise.score,
    }
    parts = []
    for metric in ("accuracy", "loss"):
        expected = getattr(noise, f"{metric}_expected")
        observed = getattr(noise, f"{metric}_observed")
        if noise.ratio(metric) is None:
            continue
        evidence |= {
            f"val_{metric}_expected_noise": expected,
            f"val_{metric}_observed_noise": observed,
            f"val_{metric}_noise_ratio": noise.ratio(metric),
        }
        if metric == "accuracy":
            source = f"a mean val_accuracy of {noise.accuracy_mean:.1%} (binomial)"
        else:
            source = f"per-image losses spread by {noise.loss_per_image_sd:.3g}"
        parts.append(
            f"with {source} the standard error of val_{metric} is ±{expected:.3g}, "
            f"observed ±{observed:.3g}"
        )
    if noise.ratio("loss") is None:
        parts.append("val_loss has no band without per-image losses (predictions.tsv)")
    verdict = " That is what a sample of this size produces: measurement noise."
    fix = (
        f"nothing must change; to narrow the band (it shrinks as 1/√images) set "
        f"{settings.key('validation_steps')}: null or simulate more images (images_per_class)"
    )
    if beyond:
        verdict = (
            " The curve moves more than the images scored explain, so the model itself "
            "jumps between epochs; "
        )
        if causes:
            verdict += f"see {', '.join(causes)} for why."
        else:
            verdict += "no check that ran explains why" + (
                f" ({', '.join(unchecked)} could not run)." if unchecked else "."
            )
        fix = (
            f"remove the causes named above; failing that, lower "
            f"{settings.key('learning_rate')} or raise {settings.key('batch_size')}"
        )
    return Finding(
        SAMPLING_NOISE,
        "warning" if beyond else "info",
        f"Validation curve fluctuates {'beyond' if beyond else 'within'} its sampling noise",
        evidence,
        f"Each epoch scored {m} validation images: {'; '.join(parts)}. Observed noise is the "
        f"spread of epoch-to-epoch changes with the trend removed (median absolute deviation "
        f"of first differences / √2).{verdict}",
        fix,
    )


def check_stable(findings: list[Finding], noise: NoiseEstimate | None) -> Finding | Skipped | None:
    if any(finding.severity != "info" for finding in findings):
        return None
    if noise is None or noise.score is None:
        return Skipped("STABLE", "no validation curve with a noise band to judge")
    return Finding(
        "STABLE",
        "info",
        "Learning curve is stable",
        {"fluctuation_score": noise.score, "epochs": noise.epochs},
        f"No check found a problem, and the validation curve moves by {noise.score:.2f}× the "
        f"noise that its {noise.images_scored} scored images explain: measurement noise.",
        "nothing to change",
    )
