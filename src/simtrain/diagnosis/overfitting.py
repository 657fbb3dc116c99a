"""OVERFITTING and OVER_CONFIDENCE: validation loss rising out of its noise band after its minimum.

Both start the same way: val_loss rises above its best epoch by more than its noise while the
training loss keeps falling. They differ in val_accuracy. If accuracy falls too, or holds far
below training accuracy, the model has memorised its training images (OVERFITTING: stop
earlier, get more data). If accuracy holds or still rises and the model scores about as well on
validation as on training, it gets as many images right but grows more confident on the ones
it gets wrong (OVER_CONFIDENCE): stopping on val_loss would throw away a better classifier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped
from simtrain.diagnosis.noise import PRACTICAL_FLOOR
from simtrain.diagnosis.validation_record import ValidationRecord

# Overfitting: after the (3-epoch smoothed) minimum, val_loss exceeds it by more than 3 noise
# bands in at least 2 epochs and the last 3 epochs still sit above that line (a sustained rise,
# not one excursion). Simulated flat pure-noise curves of 6-40 epochs pass this in < 0.5 % of
# cases with the expected band, 2-5 % with only the observed band (2 bands: 3-13 %).
OVERFIT_BAND_SIGMAS = 3.0
OVERFIT_MIN_EPOCHS_ABOVE = 2
OVERFIT_SMOOTHING_EPOCHS = 3
# val_accuracy "falls" when its last-3-epoch mean is more than 2 standard errors below its mean
# around the best val_loss epoch; within that it holds (over-confidence).
ACCURACY_DROP_SIGMAS = 2.0
# The paired (per-image) version of that test: one-sided, as strict as two standard errors.
PAIRED_DROP_ALPHA = 0.025
# Memorisation without a drop: while val_loss rises, training accuracy (last 3 epochs) stays
# above validation accuracy by 10 points and by 3 of validation's standard errors. A model
# that generalises scores about the same on both (augmentation keeps training a bit lower).
MEMORISATION_GAP = 0.10
MEMORISATION_SIGMAS = 3.0
# The fix: stop when val_loss has not improved for 3 epochs, and keep the best epoch's weights.
EARLY_STOPPING_PATIENCE = 3
EARLY_STOPPING = {
    "monitor": "val_loss",
    "patience": EARLY_STOPPING_PATIENCE,
    "restore_best_weights": True,
}


def _paired_drop_p(record: ValidationRecord, rows: np.ndarray, best: int) -> float | None:
    """One-sided sign test on a fixed validation set: do more images go from right (around
    the best epoch) to wrong (the last epochs) than the reverse? None unless every image was
    scored in every epoch compared."""
    correct = record.correct[rows]
    window = OVERFIT_SMOOTHING_EPOCHS
    around, last = correct[max(best - 1, 0) : best + 2], correct[-window:]
    if (around < 0).any() or (last < 0).any():
        return None
    change = last.mean(axis=0) - around.mean(axis=0)
    worse, better = int((change < 0).sum()), int((change > 0).sum())
    if worse + better == 0:
        return 1.0
    return float(binomtest(worse, worse + better, 0.5, alternative="greater").pvalue)


def _final_training_accuracy(history: pd.DataFrame, rows: pd.Index) -> float | None:
    """Mean training accuracy of the last epochs, or None without an accuracy column."""
    if "accuracy" not in history.columns:
        return None
    accuracy = pd.to_numeric(history.loc[rows, "accuracy"], errors="coerce").to_numpy(float)
    last = accuracy[-OVERFIT_SMOOTHING_EPOCHS:]
    return float(last.mean()) if np.isfinite(last).all() else None


def _accuracy_change(
    history: pd.DataFrame,
    rows: pd.Index,
    best: int,
    accuracy_se: float | None,
    record: ValidationRecord | None = None,
) -> tuple[float, float, bool, float | None] | None:
    """(accuracy at best, final accuracy, fell significantly, paired p or None), or None
    without val_accuracy. With a per-image record of a fixed set the drop is tested image by
    image (paired, far more sensitive); otherwise against 2 standard errors."""
    if "val_accuracy" not in history.columns or accuracy_se is None:
        return None
    accuracy = pd.to_numeric(history.loc[rows, "val_accuracy"], errors="coerce").to_numpy(float)
    if not np.isfinite(accuracy).all():
        return None
    window = OVERFIT_SMOOTHING_EPOCHS
    at_best = float(accuracy[max(best - 1, 0) : best + 2].mean())
    final = float(accuracy[-window:].mean())
    p_value = None
    if record is not None and record.correct.shape[0] == len(history):
        p_value = _paired_drop_p(record, history.index.get_indexer(rows), best)
    if p_value is not None:
        fell = final < at_best and p_value < PAIRED_DROP_ALPHA
    else:
        fell = final < at_best - ACCURACY_DROP_SIGMAS * accuracy_se
    # On thousands of images a fall of a point is significant, yet no reason to stop earlier.
    fell = fell and at_best - final >= PRACTICAL_FLOOR
    return at_best, final, fell, p_value


def check_overfitting(
    history: pd.DataFrame,
    band: float | None,
    settings: RunSettings,
    accuracy_se: float | None = None,
    record: ValidationRecord | None = None,
) -> Finding | Skipped | None:
    """OVERFITTING or OVER_CONFIDENCE (see the module); `band` is val_loss's noise, `record`
    the per-image validation record (a paired test of the accuracy drop on a fixed set)."""
    code = "OVERFITTING"
    if "val_loss" not in history.columns:
        return Skipped(code, "the history has no val_loss column (no validation data)")
    frame = history[["epoch", "loss", "val_loss"]].apply(pd.to_numeric, errors="coerce")
    frame = frame[np.isfinite(frame["loss"]) & np.isfinite(frame["val_loss"])]
    if len(frame) <= OVERFIT_SMOOTHING_EPOCHS or band is None:
        return Skipped(
            code,
            f"needs over {OVERFIT_SMOOTHING_EPOCHS} epochs with finite loss and "
            f"val_loss, and a noise band; the history has {len(frame)}",
        )
    val, loss = frame["val_loss"].to_numpy(dtype=float), frame["loss"].to_numpy(dtype=float)
    window = pd.Series(val).rolling(OVERFIT_SMOOTHING_EPOCHS, center=True, min_periods=1)
    smooth = window.mean().to_numpy()
    best = int(np.argmin(smooth))
    if best + OVERFIT_MIN_EPOCHS_ABOVE >= len(val):
        return None  # the best epoch is (nearly) the last: nothing has risen yet
    line = smooth[best] + OVERFIT_BAND_SIGMAS * band
    above = int((val[best + 1 :] > line).sum())
    final = val[max(best + 1, len(val) - OVERFIT_SMOOTHING_EPOCHS) :].mean()
    if above < OVERFIT_MIN_EPOCHS_ABOVE or not final > line or not loss[-1] < loss[best]:
        return None
    best_epoch = int(frame["epoch"].iloc[best])
    evidence: dict = {
        "best_epoch": best_epoch,
        "best_val_loss": smooth[best],
        "final_val_loss": final,
        "rise": final - smooth[best],
        "noise_band": band,
        "epochs_above_band": above,
        "loss_at_best_epoch": loss[best],
        "final_loss": loss[-1],
    }
    rise = (
        f"val_loss was lowest around epoch {best_epoch} ({smooth[best]:.3g}, 3-epoch mean) and "
        f"rose to {final:.3g}, more than {OVERFIT_BAND_SIGMAS:g} noise bands (±{band:.3g}) above "
        f"it in {above} later epochs, while training loss kept falling from {loss[best]:.3g} "
        f"to {loss[-1]:.3g}"
    )
    change = _accuracy_change(history, frame.index, best, accuracy_se, record)
    if change is not None:
        at_best, final_accuracy, fell, paired_p = change
        evidence |= {"val_accuracy_at_best_epoch": at_best, "final_val_accuracy": final_accuracy}
        evidence["accuracy_drop_paired_p"] = paired_p
        train_accuracy = _final_training_accuracy(history, frame.index)
        gap = None if train_accuracy is None else train_accuracy - final_accuracy
        memorises = gap is not None and gap > max(
            MEMORISATION_GAP, MEMORISATION_SIGMAS * (accuracy_se or 0.0)
        )
        if train_accuracy is not None:
            evidence |= {"final_train_accuracy": train_accuracy, "train_minus_val_accuracy": gap}
        if not fell and not memorises:
            return Finding(
                "OVER_CONFIDENCE",
                "info",
                f"Over-confidence: validation loss rises after epoch {best_epoch}, "
                f"accuracy does not fall",
                evidence,
                f"{rise}; yet val_accuracy went from {at_best:.1%} to {final_accuracy:.1%}, "
                + (
                    f"not a significant drop image by image (paired sign test p = {paired_p:.2g})"
                    if paired_p is not None
                    else f"within {ACCURACY_DROP_SIGMAS:g} standard errors (±{accuracy_se:.3g})"
                    " or higher"
                )
                + ". The model gets as many validation images right as before but "
                "grows more confident on those it gets wrong, which cross-entropy punishes: "
                "not overfitting. A checkpoint picked by lowest val_loss (best.keras) is not "
                "the most accurate one.",
                f"do not stop early on val_loss: keep the most accurate epoch "
                f"({settings.key('checkpoint_monitor')}: val_accuracy); for calibrated "
                "probabilities, fit a temperature on held-out data or train with label "
                "smoothing",
                {"checkpoint_monitor": "val_accuracy"},
            )
    more_data = "more images (images_per_class)"
    if settings.augmentation is False:
        more_data += f" or turning on {settings.key('augmentation')}"
    elif settings.augmentation is None:
        more_data += " or augmentation (if not already on)"
    if change is None:
        accuracy_text = " (no val_accuracy to tell it from over-confidence)"
    elif change[2]:
        accuracy_text = f", and val_accuracy fell from {change[0]:.1%} to {change[1]:.1%}"
    else:
        accuracy_text = (
            f"; val_accuracy held ({change[0]:.1%} to {change[1]:.1%}) but training accuracy "
            f"stayed {evidence['train_minus_val_accuracy']:.0%} points above it "
            f"({evidence['final_train_accuracy']:.1%})"
        )
    if settings.train_subset:
        # Trained on part of the images: the rest is the first remedy.
        fix = (
            f"train on every training image: set {settings.key('train_images')}: null (now "
            f"{settings.train_images}); or stop at the best epoch ({best_epoch}) with "
            f"{settings.key('early_stopping')}"
        )
        change = {"train_images": None}
    else:
        fix = (
            f"stop at the best epoch: set {settings.key('early_stopping')}: {{monitor: "
            f"val_loss, patience: {EARLY_STOPPING_PATIENCE}, restore_best_weights: true}} "
            f"(Keras EarlyStopping; here the best epoch was {best_epoch}); {more_data} delays "
            "the rise"
        )
        change = {"early_stopping": dict(EARLY_STOPPING)}
    return Finding(
        code,
        "warning",
        f"Overfitting: validation loss rises after epoch {best_epoch}",
        evidence,
        f"{rise}{accuracy_text}: the model memorises its training images instead of learning "
        f"what carries over to new ones.",
        fix,
        change,
    )
