"""UNDER_TRAINED: a run stopped while still learning fast, or that never left chance.

Such a run's final accuracy says nothing about whether the model *can* tell the classes apart,
only that this run did not train long enough to show it: its result is inconclusive (and the
comparison says so instead of "not distinguishable from chance").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped

# Still falling fast: the last epochs lowered the training loss by 10 % or more an epoch, and
# at no less than half the run's average pace per epoch (a curve that has not started to level
# off); at that pace a few more epochs would change the result substantially. The pace condition
# keeps a converged run whose loss creeps from 0.05 to 0.04 from counting.
FAST_FALL_FRACTION = 0.10
FAST_FALL_PACE = 0.5
# The fall is measured over the last 3 epochs (a least-squares slope of the log loss).
FALL_WINDOW = 3
# ...and counts only while the model still gets training images wrong: at a training accuracy
# of 99 % or more it has fit them, and a falling loss only sharpens its confidence (a memorised
# set's loss falls towards 0 for as long as it trains; OVERFITTING is what to say of that).
FIT_ACCURACY = 0.99
# Near chance: training accuracy within 10 % of the way from chance (1/classes) to perfect.
NEAR_CHANCE_FRACTION = 0.10
MIN_EPOCHS_PROPOSED = 10


def longer_epochs(epochs: int) -> int:
    """Twice the epochs, and at least 10: a 2-epoch run needs more than 4."""
    return max(2 * epochs, MIN_EPOCHS_PROPOSED)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def check_under_trained(
    history: pd.DataFrame, settings: RunSettings, classes: int | None
) -> Finding | Skipped | None:
    code = "UNDER_TRAINED"
    loss = pd.to_numeric(history["loss"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(loss).all():
        return None  # diverged: UNSTABLE_OPTIMIZATION says so
    accuracy = None
    if "accuracy" in history.columns:
        values = pd.to_numeric(history["accuracy"], errors="coerce").to_numpy(dtype=float)
        accuracy = float(values[-1]) if np.isfinite(values[-1]) else None
    chance = 1 / classes if classes and classes > 1 else None
    if loss.size < 2 and (accuracy is None or chance is None):
        return Skipped(code, "one epoch and no training accuracy with a known chance level")
    evidence: dict = {"epochs": int(loss.size), "final_loss": loss[-1]}
    reasons = []
    if loss.size >= 2:
        # Over the last epochs (not one: an epoch's loss moves with its batches), the
        # per-epoch fall of the log loss and its pace against the run's average.
        window = min(FALL_WINDOW, loss.size)
        recent = np.log(np.maximum(loss[-window:], 1e-12))
        slope = float(np.polyfit(np.arange(window), recent, 1)[0])
        fall = 1 - math.exp(slope)
        average = (loss[0] - loss[-1]) / (loss.size - 1)
        recent_fall = (loss[-window] - loss[-1]) / (window - 1)
        pace = recent_fall / average if average > 0 else 0.0
        evidence |= {"last_epochs_loss_fall": fall, "last_epochs_pace_to_average": pace}
        fit = accuracy is not None and accuracy >= FIT_ACCURACY
        if fall >= FAST_FALL_FRACTION and pace >= FAST_FALL_PACE and not fit:
            reasons.append(
                f"the last {window} epochs still lowered the training loss by {fall:.0%} an "
                f"epoch ({loss[-window]:.3g} → {loss[-1]:.3g})"
            )
    if accuracy is not None and chance is not None:
        limit = chance + NEAR_CHANCE_FRACTION * (1 - chance)
        evidence |= {"final_accuracy": accuracy, "chance": chance}
        if accuracy < limit:
            reasons.append(
                f"training accuracy ends at {accuracy:.1%}, near chance ({chance:.1%} for "
                f"{classes} classes)"
            )
    if not reasons:
        return None
    longer = (
        f"set {settings.key('epochs')}: {longer_epochs(settings.epochs)}"
        if settings.epochs
        else (f"raise {settings.key('epochs')}")
    )
    return Finding(
        code,
        "warning",
        "Under-trained: the result is inconclusive",
        evidence,
        _sentence("; ".join(reasons)) + ". The run stopped before the model settled, so its "
        "final accuracy is inconclusive: it neither shows that the model can tell the classes "
        "apart nor that it cannot.",
        f"train longer: {longer} (or more images per epoch); if the training accuracy stays "
        f"near chance, check the labels, the inputs and {settings.key('learning_rate')}",
        {"epochs": longer_epochs(settings.epochs)} if settings.epochs else None,
    )
