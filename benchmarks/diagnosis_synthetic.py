"""Synthetic runs with a known answer for `diagnosis_accuracy.py synthetic`.

A stated model of a run, on purpose *not* the diagnosis's own (its tests assume independent
per-epoch deviations around a slowly changing trend; this generator has shapes its trend
family does not fit and a per-epoch shock shared by every image, as SGD makes):

- N validation images in 5 balanced classes; image i has a fixed difficulty μ_i ~ N(0, 1).
- The model's skill g(t) follows one of SHAPES (t = 1..T, u = t / T):
  saturating      −0.8 + 1.8 (1 − exp(−t/τ)), τ = T/5 (a converged run);
  plateau_rise    flat at −0.8 until u ≈ 0.45, then a sigmoid rise to 1.0;
  lr_steps        a saturating rise to 0.6, then steps up by 0.25 at u > 0.5 and 0.15 at u > 0.75
                  (learning-rate drops);
  slow_dip        saturating, minus a dip of 0.35 centred at u = 0.6, 2+ epochs wide;
  oscillation     saturating plus 0.15 sin(2π t / P), P = max(6, T/4) epochs.
- Each epoch the model changes: image i's margin is μ_i + g(t) + δ_t + 0.3 e_it. e_it ~ N(0, 1)
  is per image (churn); δ_t is a shock shared by all images whose SD is SHOCK points of
  accuracy at that epoch's skill (ordinary SGD movement that does not shrink with N).
- An image is right when its margin is positive; its loss is log(1 + exp(−3 margin)).
- Training history: loss 0.1 + 1.5 exp(−t/τ); accuracy 3 points above validation's expected
  accuracy at that skill (a run that generalises).
- Validation: fixed 2 000 or 10 000 images, or shuffled partial (a random 1 152 of 8 000 each
  epoch: the original case's 9 steps of 128).
- Positive scenarios: "glitch K": one interior epoch of the second half (saturating, 1-point
  shocks) loses K accuracy points; "jumpy S": shocks of S points every epoch (what lagging
  BatchNorm statistics do to a curve). "drift": skill falls over the second half so that
  accuracy ends 10 points lower (a trend, not a fluctuation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from simtrain.diagnosis.validation_record import ValidationRecord

CLASSES = 5
JITTER = 0.3
LOSS_SCALE = 3.0
SHAPES = ("saturating", "plateau_rise", "lr_steps", "slow_dip", "oscillation")
CLEAN_SHOCKS = (0.0, 1.0, 2.0)  # accuracy points: ordinary SGD movement


@dataclass(frozen=True)
class Validation:
    name: str
    images: int  # N
    scored: int  # m per epoch
    batch_size: int
    validation_steps: int | None

    @property
    def shuffled(self) -> bool:
        return self.scored < self.images


FIXED_2000 = Validation("fixed 2000", 2_000, 2_000, 32, None)
FIXED_10000 = Validation("fixed 10000", 10_000, 10_000, 128, None)
SHUFFLED = Validation("shuffled 1152 of 8000", 8_000, 1_152, 128, 9)
VALIDATIONS = (FIXED_2000, FIXED_10000, SHUFFLED)


def skill(shape: str, epochs: int) -> np.ndarray:
    t = np.arange(1, epochs + 1, dtype=float)
    u, tau = t / epochs, epochs / 5
    saturating = -0.8 + 1.8 * (1 - np.exp(-t / tau))
    if shape == "saturating":
        return saturating
    if shape == "plateau_rise":
        return -0.8 + 1.8 / (1 + np.exp(-(u - 0.6) * 14))
    if shape == "lr_steps":
        return -0.8 + 1.4 * (1 - np.exp(-t / tau)) + 0.25 * (u > 0.5) + 0.15 * (u > 0.75)
    if shape == "slow_dip":
        width = max(0.12 * epochs, 2.0)
        return saturating - 0.35 * np.exp(-(((t - 0.6 * epochs) / width) ** 2))
    if shape == "oscillation":
        return saturating + 0.15 * np.sin(2 * math.pi * t / max(6.0, epochs / 4))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _slope(g: np.ndarray) -> np.ndarray:
    """d accuracy / d skill at skill g (margins μ + g + 0.3 e, μ ~ N(0, 1))."""
    spread = math.sqrt(1 + JITTER**2)
    return norm.pdf(g / spread) / spread


def _shift_for(margins: np.ndarray, points: float) -> float:
    """The downward shift of all margins that loses `points` accuracy points exactly."""
    lost = int(round(points / 100 * margins.size))
    positive = np.sort(margins[margins > 0])
    if lost <= 0 or positive.size == 0:
        return 0.0
    return float(positive[min(lost, positive.size) - 1]) + 1e-9


def simulate_run(
    rng: np.random.Generator,
    validation: Validation,
    epochs: int,
    shape: str = "saturating",
    shock: float = 0.0,
    glitch: float | None = None,
    drift: float | None = None,
) -> dict:
    """One run: history, validation record, final predictions and the injected glitch epoch."""
    g = skill(shape, epochs)
    t = np.arange(1, epochs + 1)
    tau = epochs / 5
    shared = rng.standard_normal(epochs) * shock / 100 / np.maximum(_slope(g), 0.05)
    difficulty = rng.standard_normal(validation.images)
    margins = difficulty + (g + shared)[:, None]
    margins = margins + JITTER * rng.standard_normal((epochs, validation.images))
    scored = np.ones((epochs, validation.images), dtype=bool)
    if validation.shuffled:
        scored[:] = False
        for epoch in range(epochs):
            scored[epoch, rng.choice(validation.images, validation.scored, replace=False)] = True
    glitch_epoch = None
    if glitch is not None:
        middle = max(1, epochs // 2)
        glitch_epoch = int(rng.integers(middle, epochs - 1))
        row = margins[glitch_epoch]
        row -= _shift_for(row[scored[glitch_epoch]], glitch)
    if drift is not None:
        half = epochs // 2
        for epoch in range(half, epochs):
            lost = drift * (epoch - half + 1) / (epochs - half)
            margins[epoch] -= _shift_for(margins[epoch][scored[epoch]], lost)
    correct = np.where(scored, (margins > 0).astype(np.int8), np.int8(-1)).astype(np.int8)
    loss = np.where(scored, np.logaddexp(0.0, -LOSS_SCALE * margins), np.nan).astype(np.float32)
    record = ValidationRecord(correct=correct, loss=loss)
    # Training accuracy a little above validation's expected accuracy: a run that generalises.
    expected = norm.cdf(g / math.sqrt(1 + JITTER**2))
    history = pd.DataFrame(
        {
            "epoch": t,
            "loss": 0.1 + 1.5 * np.exp(-t / tau),
            "accuracy": np.minimum(expected + 0.03, 1.0),
            "val_loss": record.mean_loss(),
            "val_accuracy": record.accuracy(),
        }
    )
    true = np.arange(validation.images) % CLASSES
    final = margins[-1] > 0
    predictions = pd.DataFrame(
        {
            "index": np.arange(validation.images),
            "true": true.astype(str),
            "predicted": np.where(final, true, (true + 1) % CLASSES).astype(str),
            "loss": np.logaddexp(0.0, -LOSS_SCALE * margins[-1]),
        }
    )
    return {
        "history": history,
        "record": record,
        "predictions": predictions,
        "glitch_epoch": None if glitch_epoch is None else glitch_epoch + 1,
    }


def settings_of(validation: Validation, epochs: int) -> dict:
    return dict(
        run="synthetic",
        train_images=10_000,
        validation_images=validation.images,
        batch_size=validation.batch_size,
        validation_steps=validation.validation_steps,
        validation_shuffle=validation.shuffled,
        epochs=epochs,
    )
