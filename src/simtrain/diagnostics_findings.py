"""The checks behind `simtrain.diagnose`: each turns one kind of run evidence into a Finding.

A check returns a `Finding`, a `Skipped` (an input it needs is missing) or None (nothing to
report). Every threshold is a module constant with the reason for its value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# --- thresholds -------------------------------------------------------------------------------

# An epoch covering under half of the training set is at least twice as short as its name says:
# "epochs" on the x-axis then badly overstate how often the model has seen the data.
PARTIAL_EPOCH_CRITICAL_FRACTION = 0.5
# BatchNorm: validation loss with stored moving statistics more than 10 % away from the loss with
# recomputed statistics, or accuracy 2 points away. Same weights, same full validation set, so
# the gap is not sampling noise; 10 % is larger than what rounding or augmentation explains.
BATCHNORM_LOSS_RELATIVE_GAP = 0.10
BATCHNORM_ACCURACY_GAP = 0.02
# Keras' default BatchNormalization momentum: moving statistics average over ~1/(1-0.99) steps.
KERAS_BATCHNORM_MOMENTUM = 0.99
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
# Overfitting: after the (3-epoch smoothed) minimum, val_loss exceeds it by more than 3 noise
# bands in at least 2 epochs and the last 3 epochs still sit above that line (a sustained rise,
# not one excursion). Simulated flat pure-noise curves of 6-40 epochs pass this in < 0.5 % of
# cases with the expected band, 2-5 % with only the observed band (2 bands: 3-13 %).
OVERFIT_BAND_SIGMAS = 3.0
OVERFIT_MIN_EPOCHS_ABOVE = 2
OVERFIT_SMOOTHING_EPOCHS = 3
# Class imbalance: the largest class twice the smallest lets a model gain accuracy by favouring
# it. Predictions "collapse" when a class receives twice its true share of predictions, or a
# class with at least 10 validation images is never predicted.
CLASS_COUNT_RATIO_LIMIT = 2.0
PREDICTION_COLLAPSE_FACTOR = 2.0
NEVER_PREDICTED_MIN_IMAGES = 10


def plain_number(value: object) -> float | int | bool | None:
    """A JSON-safe Python number: ints stay ints, floats keep 4 significant digits, NaN -> None."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        return None
    return float(f"{number:.4g}")


@dataclass(frozen=True)
class Finding:
    """One explanation of the learning curve: what was seen, why it matters, what to change."""

    code: str
    severity: str  # "info" | "warning" | "critical"
    title: str
    evidence: dict[str, float | int | bool | None]
    explanation: str
    fix: str

    def __post_init__(self) -> None:
        if self.severity not in ("info", "warning", "critical"):
            raise ValueError(f"Finding {self.code}: unknown severity {self.severity!r}")
        clean = {str(key): plain_number(value) for key, value in self.evidence.items()}
        object.__setattr__(self, "evidence", dict(sorted(clean.items())))


@dataclass(frozen=True)
class Skipped:
    """A check that could not run, and why."""

    code: str
    reason: str


@dataclass(frozen=True)
class RunSettings:
    """How the run was trained (the `runs.<run>` config keys the findings refer to)."""

    run: str
    train_images: int
    validation_images: int
    batch_size: int
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    validation_shuffle: bool = False
    learning_rate: float | None = None
    optimizer: str | None = None

    def key(self, name: str) -> str:
        return f"runs.{self.run}.{name}"

    @classmethod
    def checked(cls, **settings: object) -> RunSettings:
        """Settings whose counts were checked (a ValueError names the key that is wrong)."""
        counts = ("train_images", "validation_images", "batch_size", "steps_per_epoch")
        for name in (*counts, "validation_steps"):
            least = 0 if name == "validation_images" else 1
            value = settings[name]
            if value is None and "steps" in name:
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
            settings[name] = int(value)
        settings["validation_shuffle"] = bool(settings["validation_shuffle"])
        return cls(**settings)  # type: ignore[arg-type]


def finite_column(frame: pd.DataFrame | None, column: str) -> np.ndarray:
    """The finite values of a numeric column, or an empty array when it is missing."""
    if frame is None or column not in frame.columns:
        return np.array([], dtype=float)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def check_partial_epoch(history: pd.DataFrame, settings: RunSettings) -> Finding | None:
    steps, batch, total = settings.steps_per_epoch, settings.batch_size, settings.train_images
    if steps is None or steps * batch >= total:
        return None
    per_epoch, full_steps, epochs_run = steps * batch, math.ceil(total / batch), len(history)
    fraction, passes = per_epoch / total, epochs_run * per_epoch / total
    epochs_for_pass = math.ceil(total / per_epoch)
    evidence: dict = {
        "train_images": total,
        "batch_size": batch,
        "steps_per_epoch": steps,
        "images_per_epoch": per_epoch,
        "fraction_per_epoch": fraction,
        "epochs_to_see_every_image": epochs_for_pass,
        "epochs_run": epochs_run,
        "full_steps_per_epoch": full_steps,
        "full_passes_run": passes,
    }
    coverage = finite_column(history, "train_coverage")
    if coverage.size:
        evidence["observed_mean_train_coverage"] = float(np.mean(coverage))
    return Finding(
        "PARTIAL_EPOCH",
        "critical" if fraction < PARTIAL_EPOCH_CRITICAL_FRACTION else "warning",
        f"Each epoch trains on only {fraction:.1%} of the training images",
        evidence,
        f"steps_per_epoch={steps} × batch_size={batch} = {per_epoch} images per epoch, but the "
        f"training set has {total}: each 'epoch' covers {fraction:.1%} of it, and it takes at "
        f"least {epochs_for_pass} epochs to show the model every image once; the {epochs_run} "
        f"epochs run add up to {passes:.2g} passes. An epoch's training loss averages over few "
        f"images, the model is validated after every {fraction:.0%} of a real pass while it "
        f"still changes fast, and a pipeline that restarts each epoch unshuffled never shows "
        f"it the rest.",
        f"set {settings.key('steps_per_epoch')}: null (Keras: steps_per_epoch=None) so every "
        f"epoch covers all {total} images ({full_steps} steps of {batch}); to keep the number "
        f"of updates, set {settings.key('epochs')}: {math.ceil(passes)}",
    )


def check_partial_validation(history: pd.DataFrame, settings: RunSettings) -> Finding | None:
    steps, batch, total = settings.validation_steps, settings.batch_size, settings.validation_images
    if steps is None or total <= 0 or steps * batch >= total:
        return None
    scored, shuffle = steps * batch, settings.validation_shuffle
    fraction = scored / total
    if shuffle:
        consequence = (
            "The validation data is shuffled, so each epoch scored a DIFFERENT random part: "
            "consecutive points of the curve compare the model on different samples, and part "
            "of their ups and downs is only which images were drawn."
        )
    else:
        consequence = (
            "They are always the same first images: the curve is consistent but describes only "
            "that slice, which may hold only some classes when images are ordered by class "
            "folder (as flow_from_directory without shuffle orders them)."
        )
    return Finding(
        "PARTIAL_VALIDATION",
        "warning",
        f"Each epoch scores only {fraction:.1%} of the validation images",
        {
            "validation_images": total,
            "batch_size": batch,
            "validation_steps": steps,
            "images_scored_per_epoch": scored,
            "fraction_per_epoch": fraction,
            "validation_shuffle": shuffle,
        },
        f"validation_steps={steps} × batch_size={batch} = {scored} of {total} validation images "
        f"({fraction:.1%}) are scored per epoch. {consequence}",
        f"set {settings.key('validation_steps')}: null (Keras: validation_steps=None) so every "
        f"epoch scores all {total} images ({math.ceil(total / batch)} steps of {batch})",
    )


BATCHNORM_KEYS = tuple(
    f"val_{m}_{s}" for m in ("loss", "accuracy") for s in ("moving", "recomputed")
)


def check_batchnorm(batchnorm: dict | None, settings: RunSettings) -> Finding | Skipped:
    code = "BATCHNORM_STATISTICS"
    if batchnorm is None:
        return Skipped(
            code,
            "needs the trained model (validation loss with stored vs "
            "recomputed BatchNorm statistics); none given, or no BatchNorm layers",
        )
    missing = [key for key in BATCHNORM_KEYS if key not in batchnorm]
    if missing:
        raise ValueError(f"batchnorm evidence lacks {missing}; expected keys {BATCHNORM_KEYS}")
    moving, recomputed, accuracy_moving, accuracy_recomputed = (
        float(batchnorm[key]) for key in BATCHNORM_KEYS
    )
    relative = abs(moving - recomputed) / max(abs(recomputed), 1e-12)
    accuracy_gap = accuracy_moving - accuracy_recomputed
    # `not <=` so that a NaN gap counts as large
    large = (
        not relative <= BATCHNORM_LOSS_RELATIVE_GAP or abs(accuracy_gap) > BATCHNORM_ACCURACY_GAP
    )
    evidence = {key: float(batchnorm[key]) for key in BATCHNORM_KEYS}
    evidence |= {
        "val_loss_relative_gap": relative,
        "val_accuracy_gap": accuracy_gap,
        "relative_gap_limit": BATCHNORM_LOSS_RELATIVE_GAP,
    }
    explanation = (
        f"With the same weights, validation loss is {moving:.3g} with the stored BatchNorm "
        f"moving statistics and {recomputed:.3g} with statistics recomputed over training data "
        f"({relative:.0%} apart; accuracy {accuracy_moving:.1%} vs {accuracy_recomputed:.1%})."
    )
    title, fix = "BatchNorm moving statistics match the weights", "nothing to change"
    if not large:
        explanation += " The stored statistics are not what moves the curve."
    else:
        title = "Validation is distorted by lagging BatchNorm moving statistics"
        fix = (
            f"raise {settings.key('batch_size')} (steadier batch statistics), lower the "
            f"BatchNormalization momentum (e.g. 0.9) so the averages keep up within an "
            f"epoch, or recompute the statistics on training data after training (precise-BN)"
        )
        explanation += (
            " In inference mode BatchNorm layers normalise with moving averages that trail the "
            "changing weights (and are noisy for small batches), so validation jumps with them "
            "even when the model has barely changed."
        )
        if settings.steps_per_epoch is not None:
            explanation += (
                f" With Keras' default momentum {KERAS_BATCHNORM_MOMENTUM} the averages span "
                f"~{round(1 / (1 - KERAS_BATCHNORM_MOMENTUM))} steps, but an epoch here has "
                f"{settings.steps_per_epoch}: they still partly describe earlier epochs' weights."
            )
    return Finding(code, "warning" if large else "info", title, evidence, explanation, fix)


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


def _count_problem(counts: dict, name: str, evidence: dict, prefix: str) -> str | None:
    """Record class counts in evidence; describe them when largest/smallest is over the limit."""
    counts = {str(key): int(value) for key, value in counts.items()}
    largest = max(counts, key=lambda key: (counts[key], key))
    smallest = min(counts, key=lambda key: (counts[key], key))
    ratio = counts[largest] / counts[smallest] if counts[smallest] else math.inf
    evidence |= {f"{prefix}_images_{key}": value for key, value in counts.items()}
    evidence[f"{prefix}_count_ratio"] = ratio  # inf (an empty class) is written as null
    if ratio <= CLASS_COUNT_RATIO_LIMIT:
        return None
    return (
        f"the {name} holds {counts[largest]} images of '{largest}' but {counts[smallest]} "
        f"of '{smallest}'"
    )


def _collapse_problem(predictions: pd.DataFrame, evidence: dict) -> str | None:
    """Record how predictions spread over classes; describe a collapse onto few classes."""
    true = predictions["true"].astype(str).value_counts().to_dict()
    predicted = predictions["predicted"].astype(str).value_counts().to_dict()
    top = max(predicted, key=lambda key: (predicted[key], key))
    top_share, true_share = predicted[top] / len(predictions), true.get(top, 0) / len(predictions)
    never = sorted(
        key
        for key, count in true.items()
        if count >= NEVER_PREDICTED_MIN_IMAGES and key not in predicted
    )
    evidence |= {
        "top_predicted_share": top_share,
        "top_predicted_true_share": true_share,
        "classes_never_predicted": len(never),
    }
    if top_share < PREDICTION_COLLAPSE_FACTOR * true_share and not never:
        return None
    return (
        f"the model predicts '{top}' for {top_share:.0%} of the validation images though "
        f"{true_share:.0%} are '{top}'" + (f", and never {', '.join(never)}" if never else "")
    )


def check_class_imbalance(
    train_label_counts: dict[str, int] | None, predictions: pd.DataFrame | None
) -> Finding | Skipped | None:
    code = "CLASS_IMBALANCE"
    if predictions is not None and not {"true", "predicted"} <= set(predictions.columns):
        predictions = None
    if not train_label_counts and predictions is None:
        return Skipped(code, "no training label counts and no predictions to count classes in")
    evidence: dict = {}
    counts, collapse = [], None
    if train_label_counts:
        counts.append(_count_problem(train_label_counts, "training set", evidence, "train"))
    if predictions is not None:
        true = predictions["true"].astype(str).value_counts().to_dict()
        counts.append(_count_problem(true, "validation set", evidence, "validation"))
        collapse = _collapse_problem(predictions, evidence)
    problems = [problem for problem in [*counts, collapse] if problem]
    if not problems:
        return None
    fixes = []
    if any(counts):
        fixes.append("give every class the same number of images, or pass class_weight to fit")
    if collapse:
        fixes.append(
            "a model collapsed onto few classes has not learned the task: check labels "
            "and inputs, lower the learning rate, see BATCHNORM_STATISTICS"
        )
    text = "; ".join(problems)
    return Finding(
        code,
        "warning",
        "Classes are imbalanced or predictions collapse onto few classes",
        evidence,
        text[0].upper() + text[1:] + ". A model can then lower its loss by favouring the "
        "frequent classes, and accuracy overstates how well it tells the classes apart.",
        "; ".join(fixes),
    )
