"""OVERFITTING: validation loss rising out of its noise band while training loss falls."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped

# Overfitting: after the (3-epoch smoothed) minimum, val_loss exceeds it by more than 3 noise
# bands in at least 2 epochs and the last 3 epochs still sit above that line (a sustained rise,
# not one excursion). Simulated flat pure-noise curves of 6-40 epochs pass this in < 0.5 % of
# cases with the expected band, 2-5 % with only the observed band (2 bands: 3-13 %).
OVERFIT_BAND_SIGMAS = 3.0
OVERFIT_MIN_EPOCHS_ABOVE = 2
OVERFIT_SMOOTHING_EPOCHS = 3


def check_overfitting(
    history: pd.DataFrame, band: float | None, settings: RunSettings
) -> Finding | Skipped | None:
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
    return Finding(
        code,
        "warning",
        f"Overfitting: validation loss rises after epoch {best_epoch}",
        {
            "best_epoch": best_epoch,
            "best_val_loss": smooth[best],
            "final_val_loss": final,
            "rise": final - smooth[best],
            "noise_band": band,
            "epochs_above_band": above,
            "loss_at_best_epoch": loss[best],
            "final_loss": loss[-1],
        },
        f"val_loss was lowest around epoch {best_epoch} ({smooth[best]:.3g}, 3-epoch mean) and "
        f"rose to {final:.3g}, more than {OVERFIT_BAND_SIGMAS:g} noise bands (±{band:.3g}) above "
        f"it in {above} later epochs, while training loss kept falling from {loss[best]:.3g} "
        f"to {loss[-1]:.3g}: the model memorises its training images instead of learning what "
        f"carries over to new ones.",
        f"stop at the best epoch: set {settings.key('epochs')}: {best_epoch} (or use Keras "
        f"EarlyStopping(monitor='val_loss', restore_best_weights=True)); more images "
        f"(images_per_class) or {settings.key('augmentation')} delay the rise",
    )
