"""BATCHNORM_STATISTICS and AUGMENTATION_SHIFT: what the model's BatchNorm statistics do to
its validation score (evidence from `model_evidence`).

Each compares the same weights on the same validation images with two sets of statistics. The
gap in accuracy is tested one-sided (is the second set better?) with a standard error that
adds the images' paired variance and the recomputation's own spread (a bootstrap over its
training batches). A gap is a finding when it is significant (p < PAIRED_ALPHA) and large
enough to matter: ACCURACY_GAP for stored vs recomputed statistics, AUGMENTATION_FLOOR for
un-augmented vs augmented ones (augmentation makes training inputs differ from validation's
by design; the default nearest-neighbour warp costs about 3 points, which is not a fault).
"""

from __future__ import annotations

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped

# Significance of each one-sided test; 0.01 rather than 0.05: every deep run runs them.
PAIRED_ALPHA = 0.01
# Stored statistics must cost at least 2 accuracy points to matter.
ACCURACY_GAP = 0.02
# An augmentation shift must cost at least 5 points: the default nearest warp's ordinary
# shift measured 3.3 (0.945 vs 0.978, benchmarks/README.md), the legacy bilinear one 23.
AUGMENTATION_FLOOR = 0.05
# Momenta at or below this already let the averages follow the weights within ~10 steps.
FAST_MOMENTUM = 0.9


def _significant(evidence: dict, name: str, floor: float) -> bool:
    gap, p_value = evidence.get(f"{name}_gap"), evidence.get(f"{name}_p")
    return gap is not None and p_value is not None and gap >= floor and p_value < PAIRED_ALPHA


def _missing(code: str) -> Skipped:
    return Skipped(
        code,
        "needs the trained model (validation scored with stored vs recomputed BatchNorm "
        "statistics); none given, or no BatchNorm layers",
    )


def check_batchnorm(
    batchnorm: dict | None, settings: RunSettings, per_epoch_claim: bool = False
) -> Finding | Skipped:
    """Stored statistics vs statistics recomputed at the run's batch size (lag) and population
    statistics (a small-batch mismatch); `per_epoch_claim`: the per-epoch evidence found
    that precise statistics remove the curve's excess movement."""
    code = "BATCHNORM_STATISTICS"
    if batchnorm is None:
        return _missing(code)
    moving = float(batchnorm["val_accuracy_moving"])
    recomputed = float(batchnorm["val_accuracy_recomputed"])
    population = float(batchnorm["val_accuracy_population"])
    lag = _significant(batchnorm, "lag", ACCURACY_GAP)
    small_batch = _significant(batchnorm, "population", ACCURACY_GAP)
    evidence = {
        key: batchnorm.get(key)
        for key in (
            "val_accuracy_moving",
            "val_accuracy_recomputed",
            "val_accuracy_population",
            "val_loss_moving",
            "val_loss_recomputed",
            "lag_gap",
            "lag_se",
            "lag_bootstrap_sd",
            "lag_p",
            "population_gap",
            "population_se",
            "population_p",
            # The augmentation shift's numbers too, so a fix's effect on them can be measured
            # where AUGMENTATION_SHIFT does not fire.
            "val_accuracy_recomputed_plain",
            "shift_gap",
            "shift_se",
            "shift_p",
            "batchnorm_momentum",
            "batch_size",
            "recompute_batches",
        )
    }
    evidence["per_epoch_claim"] = per_epoch_claim
    explanation = (
        f"With the same final weights, validation accuracy is {moving:.1%} with the stored "
        f"moving statistics, {recomputed:.1%} with statistics recomputed over "
        f"{batchnorm.get('recompute_batches')} augmented training batches of the run's size "
        f"(gap {batchnorm['lag_gap']:+.1%} ± {batchnorm['lag_se']:.1%}, p = "
        f"{batchnorm['lag_p']:.2g}, the recomputation's bootstrap spread included) and "
        f"{population:.1%} with population statistics (one very large batch; gap "
        f"{batchnorm['population_gap']:+.1%}, p = {batchnorm['population_p']:.2g})."
    )
    if not (lag or small_batch or per_epoch_claim):
        return Finding(
            code,
            "info",
            "BatchNorm moving statistics match the weights",
            evidence,
            explanation + " The stored statistics are not what moves the score.",
            "nothing to change",
        )
    reasons = []
    if lag:
        reasons.append(
            "the moving averages trail the changing weights (and are noisy for small batches)"
        )
    if small_batch and not lag:
        reasons.append(
            f"batches of {settings.batch_size} normalise by statistics unlike the population's"
        )
    if per_epoch_claim:
        reasons.append(
            "at the epochs where the curve jumps, precise statistics remove the jumps "
            "(per-epoch evidence)"
        )
    explanation += " In inference mode BatchNorm normalises with stored statistics: " + (
        "; ".join(reasons) + ", so validation moves with them rather than with the weights."
    )
    momentum = batchnorm.get("batchnorm_momentum")
    fixes = [
        f"raise {settings.key('batch_size')} (now {settings.batch_size}) for steadier batch "
        "statistics",
        "judge the run by its precise-BN accuracy (statistics recomputed after training, "
        "predictions_precise_bn.tsv) rather than the stored statistics",
    ]
    change = None
    if momentum is not None and momentum > FAST_MOMENTUM:
        fixes.insert(
            0, f"set {settings.key('batchnorm_momentum')}: {FAST_MOMENTUM} (now {momentum:g})"
        )
        change = {"batchnorm_momentum": FAST_MOMENTUM}
    elif 2 * settings.batch_size <= settings.train_images:
        change = {"batch_size": 2 * settings.batch_size}
    return Finding(
        code,
        "warning",
        "Validation is distorted by the stored BatchNorm statistics",
        evidence,
        explanation,
        "; ".join(fixes),
        change,
    )


def check_augmentation_shift(
    batchnorm: dict | None, settings: RunSettings
) -> Finding | Skipped | None:
    """Statistics from augmented vs un-augmented training inputs: do they score validation
    differently by more than augmentation ordinarily costs?"""
    code = "AUGMENTATION_SHIFT"
    if batchnorm is None:
        return _missing(code)
    if not batchnorm.get("augmented"):
        return None  # no augmentation layer: nothing can shift
    augmented = float(batchnorm["val_accuracy_recomputed"])
    plain = float(batchnorm["val_accuracy_recomputed_plain"])
    if not _significant(batchnorm, "shift", AUGMENTATION_FLOOR):
        return None
    interpolation = batchnorm.get("interpolation")
    evidence = {
        "val_accuracy_recomputed_augmented": augmented,
        "val_accuracy_recomputed_plain": plain,
        "val_loss_recomputed_augmented": batchnorm.get("val_loss_recomputed"),
        "val_loss_recomputed_plain": batchnorm.get("val_loss_recomputed_plain"),
        "shift_gap": batchnorm.get("shift_gap"),
        "shift_se": batchnorm.get("shift_se"),
        "paired_p_value": batchnorm.get("shift_p"),
        "augmentation_floor": AUGMENTATION_FLOOR,
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
            f"lower {settings.key('augmentation')}.zoom or .shear, or judge the run by its "
            "precise-BN accuracy (statistics recomputed on un-augmented training batches)"
        )
        change = None  # which of several changes, and by how much, is a judgement
    return Finding(
        code,
        "warning",
        "Augmentation makes training inputs unlike validation inputs",
        evidence,
        f"With the same weights, BatchNorm statistics recomputed over un-augmented training "
        f"batches score {plain:.1%} of the validation images, statistics recomputed over "
        f"augmented batches (what training used) {augmented:.1%} (gap "
        f"{batchnorm['shift_gap']:+.1%} ± {batchnorm['shift_se']:.1%}, p = "
        f"{batchnorm['shift_p']:.2g}; more than the {AUGMENTATION_FLOOR:.0%} augmentation "
        f"ordinarily costs). {cause} Statistics that fit the augmented inputs mis-normalise "
        "validation, so its score moves with them rather than with what the network learned.",
        fix,
        change,
    )
