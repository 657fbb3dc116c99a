"""UNDER_TRAINED: a run stopped while still learning fast, or that never left chance.

Such a run's final accuracy says nothing about whether the model *can* tell the classes apart,
only that this run did not train long enough to show it: its result is inconclusive (and the
comparison says so instead of "not distinguishable from chance").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped

# Still falling fast: the last epoch lowered the training loss by 10 % or more of its value, and
# at no less than half the run's average pace per epoch (a curve that has not started to level
# off); at that pace a few more epochs would change the result substantially. The pace condition
# keeps a converged run whose loss creeps from 0.05 to 0.04 from counting.
FAST_FALL_FRACTION = 0.10
FAST_FALL_PACE = 0.5
# Near chance: training accuracy within 10 % of the way from chance (1/classes) to perfect.
NEAR_CHANCE_FRACTION = 0.10


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
        fall = (loss[-2] - loss[-1]) / max(loss[-2], 1e-12)
        average = (loss[0] - loss[-1]) / (loss.size - 1)
        pace = (loss[-2] - loss[-1]) / average if average > 0 else 0.0
        evidence |= {"last_epoch_loss_fall": fall, "last_epoch_pace_to_average": pace}
        if fall >= FAST_FALL_FRACTION and pace >= FAST_FALL_PACE:
            reasons.append(
                f"the last epoch still lowered the training loss by {fall:.0%} "
                f"({loss[-2]:.3g} → {loss[-1]:.3g})"
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
        f"set {settings.key('epochs')}: {2 * settings.epochs}"
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
        {"epochs": 2 * settings.epochs} if settings.epochs else None,
    )
