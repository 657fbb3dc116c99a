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
# Overfitting: after the (3-epoch smoothed) minimum, val_loss exceeds it by more than 2 noise
# bands in at least 2 epochs and the last 3 epochs still sit above that line (a sustained rise,
# not one excursion); a flat pure-noise curve passes this in only ~3 % of cases.
OVERFIT_BAND_SIGMAS = 2.0
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
    per_epoch = steps * batch
    fraction = per_epoch / total
    epochs_for_pass = math.ceil(total / per_epoch)
    epochs_run = len(history)
    passes = epochs_run * per_epoch / total
    evidence: dict = {
        "train_images": total,
        "batch_size": batch,
        "steps_per_epoch": steps,
        "images_per_epoch": per_epoch,
        "fraction_per_epoch": fraction,
        "epochs_to_see_every_image": epochs_for_pass,
        "full_steps_per_epoch": math.ceil(total / batch),
        "epochs_run": epochs_run,
        "full_passes_run": passes,
    }
    coverage = finite_column(history, "train_coverage")
    if coverage.size:
        evidence["observed_mean_train_coverage"] = float(np.mean(coverage))
    return Finding(
        code="PARTIAL_EPOCH",
        severity="critical" if fraction < PARTIAL_EPOCH_CRITICAL_FRACTION else "warning",
        title=f"Each epoch trains on only {fraction:.1%} of the training images",
        evidence=evidence,
        explanation=(
            f"steps_per_epoch={steps} × batch_size={batch} = {per_epoch} images per epoch, but "
            f"the training set has {total}: each 'epoch' covers {fraction:.1%} of it, and it "
            f"takes at least {epochs_for_pass} epochs to show the model every image once. The "
            f"{epochs_run} epochs run add up to {passes:.2g} passes over the data. The training "
            f"loss of an epoch is an average over few images, the model is validated after "
            f"every {fraction:.0%} of a real pass while it still changes a lot, and an input "
            f"pipeline that restarts each epoch without reshuffling never shows it the rest."
        ),
        fix=(
            f"set {settings.key('steps_per_epoch')}: null (Keras: steps_per_epoch=None) so every "
            f"epoch covers all {total} images ({math.ceil(total / batch)} steps of {batch}); "
            f"{epochs_run} partial epochs equal about {max(1, round(passes))} full ones, so "
            f"{settings.key('epochs')} can shrink accordingly"
        ),
    )


def check_partial_validation(history: pd.DataFrame, settings: RunSettings) -> Finding | None:
    steps, batch, total = settings.validation_steps, settings.batch_size, settings.validation_images
    if steps is None or total <= 0 or steps * batch >= total:
        return None
    scored = steps * batch
    fraction = scored / total
    if settings.validation_shuffle:
        explanation = (
            f"validation_steps={steps} × batch_size={batch} = {scored} of {total} validation "
            f"images ({fraction:.1%}) are scored per epoch, and the validation data is "
            f"shuffled: each epoch scored a DIFFERENT random part. Consecutive points of the "
            f"validation curve compare the model on different samples, so part of their ups "
            f"and downs is only which images happened to be drawn."
        )
    else:
        explanation = (
            f"validation_steps={steps} × batch_size={batch} = {scored} of {total} validation "
            f"images ({fraction:.1%}) are scored per epoch, always the same first ones. The "
            f"curve is consistent between epochs but describes only that slice; when images "
            f"are ordered by class folder (as flow_from_directory without shuffle orders them) "
            f"the slice may hold only some of the classes."
        )
    return Finding(
        code="PARTIAL_VALIDATION",
        severity="warning",
        title=f"Each epoch scores only {fraction:.1%} of the validation images",
        evidence={
            "validation_images": total,
            "batch_size": batch,
            "validation_steps": steps,
            "images_scored_per_epoch": scored,
            "fraction_per_epoch": fraction,
            "validation_shuffle": settings.validation_shuffle,
        },
        explanation=explanation,
        fix=(
            f"set {settings.key('validation_steps')}: null (Keras: validation_steps=None) so "
            f"every epoch scores all {total} images ({math.ceil(total / batch)} steps of {batch})"
        ),
    )


BATCHNORM_KEYS = (
    "val_loss_moving",
    "val_loss_recomputed",
    "val_accuracy_moving",
    "val_accuracy_recomputed",
)


def check_batchnorm(batchnorm: dict | None, settings: RunSettings) -> Finding | Skipped:
    code = "BATCHNORM_STATISTICS"
    if batchnorm is None:
        return Skipped(
            code,
            "no BatchNorm evidence: it needs the trained model (validation "
            "loss with stored moving statistics vs statistics recomputed on training "
            "data); unavailable from a history file alone or without BatchNorm",
        )
    missing = [key for key in BATCHNORM_KEYS if key not in batchnorm]
    if missing:
        raise ValueError(f"batchnorm evidence lacks {missing}; expected keys {BATCHNORM_KEYS}")
    moving, recomputed, accuracy_moving, accuracy_recomputed = (
        float(batchnorm[key]) for key in BATCHNORM_KEYS
    )
    relative = abs(moving - recomputed) / max(abs(recomputed), 1e-12)
    accuracy_gap = accuracy_moving - accuracy_recomputed
    large = (
        not relative <= BATCHNORM_LOSS_RELATIVE_GAP or abs(accuracy_gap) > BATCHNORM_ACCURACY_GAP
    )
    evidence = {key: float(batchnorm[key]) for key in BATCHNORM_KEYS}
    evidence |= {
        "val_loss_relative_gap": relative,
        "val_accuracy_gap": accuracy_gap,
        "relative_gap_limit": BATCHNORM_LOSS_RELATIVE_GAP,
    }
    measured = (
        f"With the same weights, validation loss is {moving:.3g} with the stored BatchNorm "
        f"moving statistics and {recomputed:.3g} with statistics recomputed over training data "
        f"({relative:.0%} apart; accuracy {accuracy_moving:.1%} vs {accuracy_recomputed:.1%})."
    )
    if not large:
        return Finding(
            code,
            "info",
            "BatchNorm moving statistics match the weights",
            evidence,
            measured + " The stored statistics are not what moves the curve.",
            "nothing to change",
        )
    memory = round(1 / (1 - KERAS_BATCHNORM_MOMENTUM))
    lag = ""
    if settings.steps_per_epoch is not None:
        lag = (
            f" With Keras' default momentum {KERAS_BATCHNORM_MOMENTUM} the averages span "
            f"about {memory} steps, but an epoch here has {settings.steps_per_epoch}: they "
            f"still partly describe the weights of earlier epochs."
        )
    return Finding(
        code,
        "warning",
        "Validation is distorted by lagging BatchNorm moving statistics",
        evidence,
        measured + " In inference mode every BatchNorm layer normalises with moving averages "
        "that trail the changing weights (and are noisy for small batches), so validation "
        "jumps with them even when the model has barely changed." + lag,
        f"raise {settings.key('batch_size')} (steadier batch statistics), lower the "
        f"BatchNormalization momentum (e.g. 0.9) so the averages follow the weights within an "
        f"epoch, or recompute the statistics over training data after training (precise-BN)",
    )


def _training_lr(history: pd.DataFrame, settings: RunSettings) -> float | None:
    if settings.learning_rate is not None:
        return settings.learning_rate
    logged = finite_column(history, "learning_rate")
    return float(logged[-1]) if logged.size else None


def _lower_lr_fix(history: pd.DataFrame, settings: RunSettings, factor: float) -> str:
    lr = _training_lr(history, settings)
    target = f" from {lr:.2g} to about {lr / factor:.2g}" if lr else ""
    return (
        f"lower {settings.key('learning_rate')}{target}, or raise "
        f"{settings.key('batch_size')} (now {settings.batch_size})"
    )


def check_unstable_optimization(
    batches: pd.DataFrame | None, history: pd.DataFrame, settings: RunSettings
) -> Finding | Skipped | None:
    code = "UNSTABLE_OPTIMIZATION"
    frame = batches if batches is not None else history
    if batches is not None and "step" in batches.columns:
        frame = batches.sort_values("step", kind="stable")
    loss = pd.to_numeric(frame["loss"], errors="coerce").to_numpy(dtype=float)
    epochs = frame["epoch"].to_numpy() if "epoch" in frame.columns else np.ones(loss.size)
    bad = ~np.isfinite(loss)
    if bad.any():
        first = int(np.argmax(bad))
        return Finding(
            code,
            "critical",
            "Training loss became NaN or infinite",
            {
                "first_nonfinite_epoch": int(epochs[first]),
                "nonfinite_values": int(bad.sum()),
                "learning_rate": _training_lr(history, settings),
            },
            f"The training loss stopped being a finite number in epoch {int(epochs[first])}: "
            f"the weights diverged, and every later point of every curve is meaningless.",
            _lower_lr_fix(history, settings, 10),
        )
    if batches is None:
        return Skipped(
            code,
            "no per-batch losses (batches.tsv): spikes and batch-loss scatter "
            "cannot be measured from per-epoch averages",
        )
    if len(np.unique(epochs)) > 1:
        after_warmup = epochs > epochs.min()
    else:
        after_warmup = np.arange(loss.size) >= math.ceil(WARMUP_FRACTION * loss.size)
    if after_warmup.sum() < MIN_BATCHES_AFTER_WARMUP:
        return Skipped(
            code,
            f"only {int(after_warmup.sum())} batches after warm-up; at least "
            f"{MIN_BATCHES_AFTER_WARMUP} are needed",
        )
    median = (
        pd.Series(loss)
        .rolling(SPIKE_WINDOW_BATCHES, center=True, min_periods=1)
        .median()
        .to_numpy()
    )
    residual = loss - median
    spikes = after_warmup & (loss > SPIKE_FACTOR * median) & (residual > SPIKE_MIN_EXCESS)
    spike_fraction = spikes.sum() / after_warmup.sum()
    scatter = np.std(residual[after_warmup]) / max(np.mean(loss[after_warmup]), BATCH_LOSS_FLOOR)
    if spike_fraction <= SPIKE_FRACTION_LIMIT and scatter <= BATCH_LOSS_CV_LIMIT:
        return None
    ratio = loss[after_warmup] / np.maximum(median[after_warmup], 1e-12)
    lr = _training_lr(history, settings)
    return Finding(
        code,
        "warning",
        "Training steps are unstable: batch losses spike and scatter",
        {
            "batches_after_warmup": int(after_warmup.sum()),
            "spikes": int(spikes.sum()),
            "spike_fraction": spike_fraction,
            "spike_fraction_limit": SPIKE_FRACTION_LIMIT,
            "spike_factor": SPIKE_FACTOR,
            "largest_loss_to_median_ratio": float(ratio.max()),
            "batch_loss_cv": scatter,
            "batch_loss_cv_limit": BATCH_LOSS_CV_LIMIT,
            "batch_size": settings.batch_size,
            "learning_rate": lr,
        },
        f"After warm-up, {int(spikes.sum())} of {int(after_warmup.sum())} batches "
        f"({spike_fraction:.1%}) had a loss over {SPIKE_FACTOR:g}× the rolling median of their "
        f"neighbours, and batch losses scatter around that median by {scatter:.2f} of the mean "
        f"loss. Steps this erratic{f' with {settings.optimizer}' if settings.optimizer else ''}"
        f"{f' at learning rate {lr:.2g}' if lr else ''} throw the weights around, so the model "
        f"validated at the end of each epoch differs more than its progress would suggest.",
        _lower_lr_fix(history, settings, 3),
    )


def check_overfitting(
    history: pd.DataFrame, band: float | None, settings: RunSettings
) -> Finding | Skipped | None:
    code = "OVERFITTING"
    if "val_loss" not in history.columns:
        return Skipped(code, "the history has no val_loss column (no validation data)")
    frame = history[["epoch", "loss", "val_loss"]].apply(pd.to_numeric, errors="coerce")
    frame = frame[np.isfinite(frame["loss"]) & np.isfinite(frame["val_loss"])]
    if len(frame) < OVERFIT_SMOOTHING_EPOCHS + 1 or band is None:
        return Skipped(
            code,
            f"needs at least {OVERFIT_SMOOTHING_EPOCHS + 1} epochs with finite "
            f"loss and val_loss and a noise band; the history has {len(frame)}",
        )
    val = frame["val_loss"].to_numpy(dtype=float)
    loss = frame["loss"].to_numpy(dtype=float)
    smooth = (
        pd.Series(val)
        .rolling(OVERFIT_SMOOTHING_EPOCHS, center=True, min_periods=1)
        .mean()
        .to_numpy()
    )
    best = int(np.argmin(smooth))
    line = smooth[best] + OVERFIT_BAND_SIGMAS * band
    above = int((val[best + 1 :] > line).sum())
    tail = val[max(best + 1, len(val) - OVERFIT_SMOOTHING_EPOCHS) :]
    if above < OVERFIT_MIN_EPOCHS_ABOVE or not tail.mean() > line or not loss[-1] < loss[best]:
        return None
    best_epoch = int(frame["epoch"].iloc[best])
    rise = tail.mean() - smooth[best]
    return Finding(
        code,
        "warning",
        f"Overfitting: validation loss rises from epoch {best_epoch} on",
        {
            "best_epoch": best_epoch,
            "best_val_loss": smooth[best],
            "final_val_loss": tail.mean(),
            "rise": rise,
            "noise_band": band,
            "rise_in_bands": rise / band if band > 0 else None,
            "epochs_above_band": above,
            "loss_at_best_epoch": loss[best],
            "final_loss": loss[-1],
        },
        f"val_loss was lowest around epoch {best_epoch} ({smooth[best]:.3g}, 3-epoch mean) and "
        f"has since risen to {tail.mean():.3g}, more than {OVERFIT_BAND_SIGMAS:g} noise bands "
        f"(±{band:.3g}) in {above} later epochs, while training loss kept falling from "
        f"{loss[best]:.3g} to {loss[-1]:.3g}: the model memorises its training images instead "
        f"of learning what carries over to new ones.",
        f"stop at the best epoch: set {settings.key('epochs')}: {best_epoch} (or use "
        f"keras.callbacks.EarlyStopping(monitor='val_loss', restore_best_weights=True)); more "
        f"training images (images_per_class) or {settings.key('augmentation')} delay the rise",
    )


def _count_ratio(counts: dict[str, int]) -> tuple[float, str, str]:
    """max/min of class counts (inf when a class is empty) and the largest/smallest classes."""
    largest = max(counts, key=lambda name: (counts[name], name))
    smallest = min(counts, key=lambda name: (counts[name], name))
    ratio = counts[largest] / counts[smallest] if counts[smallest] > 0 else math.inf
    return ratio, largest, smallest


def check_class_imbalance(
    train_label_counts: dict[str, int] | None, predictions: pd.DataFrame | None
) -> Finding | Skipped | None:
    code = "CLASS_IMBALANCE"
    has_predictions = predictions is not None and {"true", "predicted"} <= set(predictions.columns)
    if not train_label_counts and not has_predictions:
        return Skipped(code, "no training label counts and no predictions to count classes in")
    evidence: dict = {}
    problems, fixes = [], []
    sources = [("train", train_label_counts or {}, "training set")]
    if has_predictions:
        true = predictions["true"].astype(str).value_counts().to_dict()
        sources.append(("validation", true, "validation set"))
    for prefix, counts, name in sources:
        if not counts:
            continue
        counts = {str(key): int(value) for key, value in counts.items()}
        ratio, largest, smallest = _count_ratio(counts)
        evidence |= {f"{prefix}_images_{key}": value for key, value in counts.items()}
        evidence[f"{prefix}_count_ratio"] = ratio
        if ratio > CLASS_COUNT_RATIO_LIMIT:
            problems.append(
                f"the {name} holds {counts[largest]} images of '{largest}' but "
                f"{counts[smallest]} of '{smallest}'"
            )
            fixes.append(f"give every class the same number of {name} images")
    if has_predictions:
        predicted = predictions["predicted"].astype(str).value_counts().to_dict()
        total = len(predictions)
        top = max(predicted, key=lambda name: (predicted[name], name))
        top_share, true_share = predicted[top] / total, true.get(top, 0) / total
        never = sorted(
            n
            for n, c in true.items()
            if c >= NEVER_PREDICTED_MIN_IMAGES and predicted.get(n, 0) == 0
        )
        evidence |= {
            "top_predicted_share": top_share,
            "top_predicted_true_share": true_share,
            "classes_never_predicted": len(never),
        }
        if top_share >= PREDICTION_COLLAPSE_FACTOR * true_share or never:
            problems.append(
                f"the model predicts '{top}' for {top_share:.0%} of the validation "
                f"images though {true_share:.0%} are '{top}'"
                + (f", and never predicts {', '.join(never)}" if never else "")
            )
            fixes.append(
                "a model collapsed onto few classes has not learned the task: check "
                "labels and inputs, lower the learning rate, and see "
                "BATCHNORM_STATISTICS"
            )
    if not problems:
        return None
    return Finding(
        code,
        "warning",
        "Classes are imbalanced or predictions collapse onto few classes",
        evidence,
        "; ".join(problems).capitalize() + ". A model can then lower its loss by favouring the "
        "frequent classes, and accuracy overstates how well it tells the classes apart.",
        "; ".join(fixes) + " (or pass class_weight to model.fit)",
    )
