"""The noise model of a validation curve: what moves it when nothing is wrong.

An epoch's val_accuracy differs from the learning trend for two ordinary reasons:

- **validation sampling** (shuffled partial validation only): each epoch scores a different
  random m of the N images, drawn without replacement, so its standard error is binomial
  times the finite-population factor √((N−m)/(N−1)). A fixed set (the same images every
  epoch) has no sampling noise between epochs.
- **training movement**: SGD changes the model between epochs, so even a fixed set's accuracy
  moves around the trend, by an amount that does not shrink with the size of the set. It is
  estimated from the run itself (second differences of its curve, leaving out the epoch under
  test; `curve_tests`), pooled with the curves of its seed replicates when there are any.

Per epoch, the two add: Var = s² + σ_m². The tests (`curve_tests`) ask whether the curve
moves more than that: one epoch beyond both neighbours (a glitch), or movement throughout
beyond sampling plus the largest movement accepted as ordinary (PRACTICAL_FLOOR). Nothing
smaller than PRACTICAL_FLOOR (accuracy points) is a WARNING, whatever its p-value: with
thousands of validation images tiny, harmless changes are significant; a one-epoch excess
must reach GLITCH_FLOOR (4 points: real runs' occasional one-epoch dips of 3 are ordinary).

The fluctuation score is the movement the curve shows (glitches included) over the expected
√(s² + min(σ_m, floor)²): ≈ 1 for a curve that moves as sampling and ordinary training make it
move, on fixed and shuffled sets alike; ≫ 1 when something else moves it.

The first fifth of the epochs (warm-up) is left out: the model changes fastest there and
BatchNorm's moving statistics trail it by design, so early jumps are expected.

Assumptions: per-epoch deviations are independent and roughly normal; the trend changes
slowly or monotonically (a monotone trend of any shape makes no one-epoch excess); movement is
about constant over the epochs compared. val_loss is reported with its per-epoch standard
error but does not drive the verdict: it is dominated by a few confidently wrong images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simtrain.diagnosis.curve_tests import (
    MIN_EPOCHS_FOR_OUTLIERS,
    Churn,
    Glitch,
    Movement,
    churn,
    glitch_test,
    movement_scale,
    movement_test,
    observed_movement,
)
from simtrain.diagnosis.findings import RunSettings, Skipped, finite_column
from simtrain.diagnosis.validation_record import ValidationRecord

SAMPLING_NOISE = "VALIDATION_SAMPLING_NOISE"
# Significance level of the glitch tests (against the run's own movement; against the largest
# ordinary movement).
ALPHA = 0.01
# The movement test's null is the edge of "ordinary" (movement exactly at the practical floor);
# ordinary runs move well below it, so 0.05 there raises fewer alarms than 0.01 elsewhere while
# catching a 10-epoch curve that moves twice the floor more often.
MOVEMENT_ALPHA = 0.05
# The practical floor, in accuracy: per-epoch movement up to 3 points is ordinary training
# (on a 200-image set one flipped image is half a point; SGD at a constant learning rate moves
# a converged model by about 0.5-2 points an epoch).
PRACTICAL_FLOOR = 0.03
# A one-epoch excess beyond both neighbours must reach GLITCH_FLOOR to matter: real runs move
# with heavier tails than the tests' normal null, and clean small CNNs whose curves otherwise
# move by half a point showed single 3-4 point dips at p < 0.01 (development runs of issue 20's
# third round: 4 of 120 clean runs), while a 5-point one-epoch drop must still be found.
GLITCH_FLOOR = 0.04
MAD_TO_SD = 1.4826
# The first fifth of the epochs is warm-up (see estimate_noise): 2 of 10, 4 of 20.
WARMUP_FRACTION = 5


@dataclass(frozen=True)
class NoiseEstimate:
    """A validation curve, its noise model and the tests against it."""

    epochs: int  # tested: after the warm-up
    warmup: int  # first epochs left out of the tests
    epoch_numbers: np.ndarray
    accuracy: np.ndarray
    sampling_se: np.ndarray  # per epoch; 0 for a fixed set
    images_scored: int  # median per epoch (m)
    validation_images: int  # N
    fixed_set: bool
    finite_population_factor: float
    from_record: bool
    replicates: int  # other seeds' curves pooled into the movement estimate
    movement: Movement | None  # the movement test (whole curve, sampling included)
    own_movement: float | None  # per-epoch SD without the most extreme epoch (sampling incl.)
    glitch: Glitch | None  # the largest one-epoch excess against the run's own movement
    glitch_at_floor: Glitch | None  # the same excess against sampling + the practical floor
    observed: float | None  # per-epoch SD the curve shows around its trend, glitches included
    churn: Churn | None
    loss_se: float | None  # median per-epoch standard error of val_loss
    loss_se_source: str | None  # "record" | "final model"
    loss_observed: float | None  # robust epoch-to-epoch spread of val_loss

    @property
    def metric(self) -> str:
        return "accuracy"

    @property
    def sampling(self) -> float:
        """Root mean square sampling standard error per epoch (0 for a fixed set)."""
        return float(np.sqrt(np.mean(self.sampling_se**2)))

    @property
    def training_movement(self) -> float | None:
        """The model's own movement per epoch, sampling removed; None when unknown."""
        if self.own_movement is None:
            return None
        return math.sqrt(max(self.own_movement**2 - self.sampling**2, 0.0))

    @property
    def ordinary_movement(self) -> float:
        """Training movement accepted as ordinary: the estimate, at most the floor (the floor
        itself when the curve is too short to estimate it)."""
        movement = self.training_movement
        return PRACTICAL_FLOOR if movement is None else min(movement, PRACTICAL_FLOOR)

    @property
    def expected(self) -> float:
        """Expected per-epoch SD around the trend: sampling and ordinary training movement."""
        return math.sqrt(self.sampling**2 + self.ordinary_movement**2)

    @property
    def score(self) -> float | None:
        """Observed / expected movement (≈1 noise, ≫1 something else moves the curve)."""
        if self.observed is None or self.expected <= 0:
            return None
        return self.observed / self.expected

    @property
    def movement_beyond(self) -> bool:
        """The curve moves throughout by more than sampling plus the practical floor."""
        m = self.movement
        return m is not None and m.p_value is not None and m.p_value < MOVEMENT_ALPHA

    @property
    def glitch_significant(self) -> bool:
        tests = (self.glitch, self.glitch_at_floor)
        return any(g is not None and g.p_value < ALPHA for g in tests)

    @property
    def glitch_beyond(self) -> bool:
        """One epoch lies beyond both neighbours significantly and by the glitch floor."""
        return (
            self.glitch_significant
            and self.largest_excess is not None
            and self.largest_excess >= GLITCH_FLOOR
        )

    @property
    def largest_excess(self) -> float | None:
        g = self.glitch or self.glitch_at_floor
        return None if g is None else g.size

    @property
    def glitch_epoch(self) -> int | None:
        g = self.glitch or self.glitch_at_floor
        return None if g is None else int(self.epoch_numbers[g.epoch_index])

    @property
    def beyond_band(self) -> bool:
        return self.movement_beyond or self.glitch_beyond

    @property
    def loss_band(self) -> float | None:
        """Noise of val_loss for trend checks: the larger of its standard error and spread."""
        values = [v for v in (self.loss_se, self.loss_observed) if v is not None]
        return max(values) if values else None


def warmup_epochs(epochs: int) -> int:
    """How many first epochs are warm-up: a fifth of the run (none below 5 epochs)."""
    return epochs // WARMUP_FRACTION


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
    return {
        "epoch_numbers": history["epoch"].to_numpy()[keep],
        "accuracy": record.accuracy()[keep],
        "scored": scored[keep].astype(float),
        "images_scored": m,
        "validation_images": n,
        "fixed_set": fixed,
        "factor": factor,
        "churn": churn(record.correct[keep]),
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
        "loss_se": loss_se,
        "loss_se_source": None if loss_se is None else "final model",
        "loss": finite_column(history, "val_loss"),
    }


def estimate_noise(
    history: pd.DataFrame,
    settings: RunSettings,
    predictions: pd.DataFrame | None,
    record: ValidationRecord | None = None,
    replicate_curves: tuple[np.ndarray, ...] = (),
) -> NoiseEstimate | Skipped:
    """The curve's noise model and tests; Skipped when it cannot be judged.

    `replicate_curves`: val_accuracy per epoch of the run's other seed replicates (same
    settings, other seeds), pooled into the estimate of ordinary training movement.
    """
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
    # The first epochs are the model's warm-up: it changes fastest there, and BatchNorm's
    # moving statistics trail it by design. They are left out of the tests.
    warmup = warmup_epochs(epochs)
    accuracy = curve["accuracy"][warmup:]
    epochs -= warmup
    sampling_se = (
        np.zeros(epochs)
        if curve["fixed_set"]
        else binomial_se(accuracy, curve["scored"][warmup:], curve["factor"])
    )
    sampling = float(np.sqrt(np.mean(sampling_se**2)))
    replicates = tuple(
        c[warmup_epochs(len(c)) :]
        for c in (np.asarray(c, float) for c in replicate_curves)
        if np.isfinite(c).all()
    )
    churned = curve["churn"]
    if churned is not None and warmup:
        churned = Churn(
            *(
                a[warmup:]
                for a in (churned.fractions, churned.right_to_wrong, churned.wrong_to_right)
            )
        )
    allowed = math.sqrt(sampling**2 + PRACTICAL_FLOOR**2)
    return NoiseEstimate(
        epochs=epochs,
        warmup=warmup,
        epoch_numbers=curve["epoch_numbers"][warmup:],
        accuracy=accuracy,
        sampling_se=sampling_se,
        images_scored=curve["images_scored"],
        validation_images=curve["validation_images"],
        fixed_set=curve["fixed_set"],
        finite_population_factor=curve["factor"],
        from_record=record is not None,
        replicates=len(replicates),
        movement=movement_test(accuracy, allowed),
        own_movement=movement_scale(accuracy),
        glitch=glitch_test(accuracy, sampling, replicates=replicates),
        glitch_at_floor=glitch_test(accuracy, known_scale=allowed),
        observed=observed_movement(accuracy),
        churn=churned,
        loss_se=curve["loss_se"],
        loss_se_source=curve["loss_se_source"],
        loss_observed=detrended_noise(curve["loss"][np.isfinite(curve["loss"])]),
    )
