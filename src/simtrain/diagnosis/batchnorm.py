"""BATCHNORM_STATISTICS and AUGMENTATION_SHIFT: what the model's BatchNorm statistics do to
its validation score (evidence from `model_evidence.batchnorm_evidence`).

Both compare the same weights on the same validation images with two sets of statistics, so
the comparison is paired: an exact McNemar test on the images only one of the two gets right.
A gap is a finding when it is both significant (p < 0.01) and large enough to matter (two
accuracy points); a significant gap in the other direction is not a problem of the run.
"""

from __future__ import annotations

from scipy.stats import binomtest

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped

# Significance of the paired test, and the accuracy gain that makes a gap matter. 0.01 rather
# than 0.05: every deep run runs both tests, and a clean run must raise nothing.
PAIRED_ALPHA = 0.01
ACCURACY_GAP = 0.02
# Without discordant counts (older evidence), a loss 10 % apart or 2 accuracy points is large.
LOSS_RELATIVE_GAP = 0.10
# Momenta at or below this already let the averages follow the weights within ~10 steps.
FAST_MOMENTUM = 0.9

BATCHNORM_KEYS = tuple(
    f"val_{m}_{s}" for m in ("loss", "accuracy") for s in ("moving", "recomputed")
)


def _paired_gap(better: int | None, worse: int | None, gap: float, loss_gap: float) -> tuple:
    """(large, p-value): is `gap` (a gain in accuracy) significant and big enough?"""
    if better is None or worse is None:
        return (not loss_gap <= LOSS_RELATIVE_GAP or abs(gap) > ACCURACY_GAP), None
    p_value = 1.0 if better + worse == 0 else binomtest(better, better + worse, 0.5).pvalue
    return gap >= ACCURACY_GAP and p_value < PAIRED_ALPHA, float(p_value)


def _relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


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
    relative = _relative(moving, recomputed)
    gain = accuracy_recomputed - accuracy_moving
    large, p_value = _paired_gap(
        batchnorm.get("only_recomputed_right"), batchnorm.get("only_moving_right"), gain, relative
    )
    evidence = {key: float(batchnorm[key]) for key in BATCHNORM_KEYS}
    evidence |= {
        "val_loss_relative_gap": relative,
        "val_accuracy_gap": accuracy_moving - accuracy_recomputed,
        "paired_p_value": p_value,
        "batchnorm_momentum": batchnorm.get("batchnorm_momentum"),
    }
    explanation = (
        f"With the same weights, validation loss is {moving:.3g} with the stored BatchNorm "
        f"moving statistics and {recomputed:.3g} with statistics recomputed over the "
        f"(augmented) training batches the weights were trained on ({relative:.0%} apart; "
        f"accuracy {accuracy_moving:.1%} vs {accuracy_recomputed:.1%}"
        + (f", paired test p = {p_value:.2g}" if p_value is not None else "")
        + ")."
    )
    if not large:
        explanation += " The stored statistics are not what moves the curve."
        return Finding(
            code,
            "info",
            "BatchNorm moving statistics match the weights",
            evidence,
            explanation,
            "nothing to change",
        )
    explanation += (
        " In inference mode BatchNorm layers normalise with moving averages that trail the "
        "changing weights (and are noisy for small batches), so validation jumps with them "
        "even when the model has barely changed."
    )
    momentum = batchnorm.get("batchnorm_momentum")
    fixes = [
        f"raise {settings.key('batch_size')} (now {settings.batch_size}) for steadier batch "
        "statistics",
        "recompute the statistics over training batches after training (precise BN, as this "
        "check did) before trusting the final score",
    ]
    if momentum is not None and momentum > FAST_MOMENTUM:
        fixes.insert(
            1,
            f"use a model whose BatchNormalization momentum is {FAST_MOMENTUM} (now "
            f"{momentum:g}: the averages span ~{round(1 / (1 - momentum))} steps)",
        )
    # The first fix, as a config change: twice the batch, if the training set has that many.
    larger = 2 * settings.batch_size
    change = {"batch_size": larger} if larger <= settings.train_images else None
    return Finding(
        code,
        "warning",
        "Validation is distorted by lagging BatchNorm moving statistics",
        evidence,
        explanation,
        "; ".join(fixes),
        change,
    )


def check_augmentation_shift(
    batchnorm: dict | None, settings: RunSettings
) -> Finding | Skipped | None:
    """Statistics from augmented vs un-augmented training inputs: do they score validation
    differently? Then augmentation makes training inputs unlike validation inputs."""
    code = "AUGMENTATION_SHIFT"
    if batchnorm is None:
        return Skipped(code, "needs the trained model with BatchNorm layers; none given")
    if not batchnorm.get("augmented") or "val_accuracy_recomputed_plain" not in batchnorm:
        return None  # no augmentation layer: nothing can shift
    augmented, plain = (
        float(batchnorm["val_accuracy_recomputed"]),
        float(batchnorm["val_accuracy_recomputed_plain"]),
    )
    loss_augmented = float(batchnorm["val_loss_recomputed"])
    loss_plain = float(batchnorm["val_loss_recomputed_plain"])
    relative = _relative(loss_augmented, loss_plain)
    large, p_value = _paired_gap(
        batchnorm.get("only_plain_right"),
        batchnorm.get("only_augmented_right"),
        plain - augmented,
        relative,
    )
    if not large:
        return None
    interpolation = batchnorm.get("interpolation")
    evidence = {
        "val_accuracy_recomputed_augmented": augmented,
        "val_accuracy_recomputed_plain": plain,
        "val_loss_recomputed_augmented": loss_augmented,
        "val_loss_recomputed_plain": loss_plain,
        "paired_p_value": p_value,
        "bilinear_interpolation": interpolation == "bilinear",
    }
    if interpolation == "bilinear":
        cause = (
            "The warp interpolates bilinearly: averaging neighbouring pixels at sub-pixel "
            "offsets smooths the pixel noise of every training image, while validation images "
            "are never warped."
        )
        fix = (
            f"set {settings.key('augmentation')}.interpolation: nearest (copies pixels, keeps "
            "their statistics)"
        )
        change = {"augmentation": {"interpolation": "nearest"}}
    else:
        cause = "The warp changes the images' statistics (scale or orientation of structure)."
        fix = (
            f"lower {settings.key('augmentation')}.zoom or .shear, or recompute the BatchNorm "
            "statistics on un-augmented training batches after training"
        )
        change = None  # which of several changes, and by how much, is a judgement
    return Finding(
        code,
        "warning",
        "Augmentation makes training inputs unlike validation inputs",
        evidence,
        f"With the same weights, BatchNorm statistics recomputed over un-augmented training "
        f"batches score {plain:.1%} of the validation images, but statistics recomputed over "
        f"augmented batches (what training used) score {augmented:.1%}"
        + (f" (paired test p = {p_value:.2g})" if p_value is not None else "")
        + f". {cause} Statistics that fit the augmented inputs mis-normalise validation, so "
        "its score moves with them rather than with what the network learned.",
        fix,
        change,
    )
