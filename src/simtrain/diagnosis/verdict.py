"""The verdict on a validation curve in words: VALIDATION_SAMPLING_NOISE (the noise model and
where the movement comes from), UNEXPLAINED_FLUCTUATION (beyond noise, no cause found) and
STABLE. The statistics are in `noise`, `curve_tests` and `attribution`."""

from __future__ import annotations

import numpy as np

from simtrain.diagnosis.attribution import UNEXPLAINED, Decomposition
from simtrain.diagnosis.curve_tests import MIN_EPOCHS_FOR_MOVEMENT
from simtrain.diagnosis.findings import Finding, RunSettings, Skipped
from simtrain.diagnosis.noise import (
    ALPHA,
    GLITCH_FLOOR,
    MOVEMENT_ALPHA,
    PRACTICAL_FLOOR,
    SAMPLING_NOISE,
    NoiseEstimate,
)


def _p(value: float) -> str:
    return "p<1e-4" if value < 1e-4 else f"p={value:.2g}"


def _points(value: float) -> str:
    return f"{100 * value:.1f} points"


def _warmup_sentence(noise: NoiseEstimate) -> str:
    if not noise.warmup:
        return ""
    first = int(noise.epoch_numbers[0])
    return (
        f"The first {noise.warmup} epoch(s) are warm-up (the model changes fastest there and "
        f"BatchNorm's moving statistics trail it by design); the tests start at epoch {first}. "
    )


def _set_sentence(noise: NoiseEstimate) -> str:
    m, n = noise.images_scored, noise.validation_images
    if noise.fixed_set:
        text = (
            f"Every epoch scored the same {m} validation images: no sampling noise between "
            f"epochs, so the curve moves only because the model changed. "
        )
        if noise.churn is not None and noise.churn.fractions.size:
            c = noise.churn
            pair = c.largest
            first, second = noise.epoch_numbers[pair], noise.epoch_numbers[pair + 1]
            text += (
                f"Between consecutive epochs a median {float(np.median(c.fractions)):.1%} of "
                f"the images flipped between right and wrong, most between epochs {first} and "
                f"{second} ({c.fractions[pair]:.1%}: {c.right_to_wrong[pair]} right→wrong, "
                f"{c.wrong_to_right[pair]} wrong→right). "
            )
        return text
    return (
        f"Each epoch scored a different random {m} of the {n} validation images (shuffled "
        f"partial validation): a sampling error of ±{_points(noise.sampling)} per epoch "
        f"(binomial times the finite-population factor √((N−m)/(N−1)) = "
        f"{noise.finite_population_factor:.3f}). "
    )


def _movement_sentence(noise: NoiseEstimate) -> str:
    movement = noise.training_movement
    if movement is None:
        return (
            f"With {noise.epochs} epochs the run's own movement cannot be estimated; up to "
            f"{_points(PRACTICAL_FLOOR)} per epoch (the practical floor) counts as ordinary. "
        )
    source = "its curve" + (
        f" and those of {noise.replicates} seed replicate(s)" if noise.replicates else ""
    )
    text = (
        f"Ordinary training movement, from {source} (second differences, the most extreme "
        f"epoch left out): ±{_points(movement)} per epoch"
    )
    if movement > PRACTICAL_FLOOR:
        text += f", more than the {_points(PRACTICAL_FLOOR)} accepted as ordinary"
    return text + ". "


def _tests_sentence(noise: NoiseEstimate) -> str:
    parts = []
    m = noise.movement
    if m is not None and m.p_value is not None:
        parts.append(
            f"the curve moves ±{_points(m.scale)} per epoch against ±{_points(m.allowed)} "
            f"allowed (sampling plus the floor; {_p(m.p_value)})"
        )
    else:
        parts.append(
            f"the movement test did not run ({noise.epochs} epochs, fewer than "
            f"{MIN_EPOCHS_FOR_MOVEMENT})"
        )
    g = noise.glitch or noise.glitch_at_floor
    if g is not None:
        epoch = noise.glitch_epoch
        where = "below" if g.kind == "dip" else "above"
        text = f"the most extreme epoch is {epoch}, {_points(g.size)} {where} both neighbours"
        tests = []
        if noise.glitch is not None:
            tests.append(f"{_p(noise.glitch.p_value)} against the run's own movement")
        if noise.glitch_at_floor is not None:
            tests.append(f"{_p(noise.glitch_at_floor.p_value)} against the largest ordinary one")
        parts.append(text + f" ({', '.join(tests)}; the most extreme of {g.tested} epochs)")
    return (
        f"Tests (movement at α={MOVEMENT_ALPHA:g}, glitches at α={ALPHA:g}): "
        + "; ".join(parts)
        + "."
    )


def _decomposition_sentence(decomposition: Decomposition) -> str:
    shares = [
        ("validation sampling", decomposition.sampling),
        ("ordinary training movement", decomposition.training),
        ("the rest", decomposition.rest),
    ]
    text = "Of the curve's variance around its trend, " + ", ".join(
        f"{name} is {decomposition.share(part) or 0:.0%}" for name, part in shares
    )
    claims = [
        f"{code} claims {decomposition.share(part) or 0:.0%}"
        for code, part in decomposition.claims.items()
    ]
    if decomposition.sampling_claimed_by:
        claims.insert(0, f"{decomposition.sampling_claimed_by} explains the sampling share")
    return text + (f"; {'; '.join(claims)}" if claims else "") + "."


def evidence_of(noise: NoiseEstimate, decomposition: Decomposition) -> dict:
    evidence: dict = {
        "validation_images_scored_per_epoch": noise.images_scored,
        "validation_images": noise.validation_images,
        "fixed_validation_set": noise.fixed_set,
        "finite_population_factor": noise.finite_population_factor,
        "epochs": noise.epochs,
        "warmup_epochs": noise.warmup,
        "alpha": ALPHA,
        "movement_alpha": MOVEMENT_ALPHA,
        "practical_floor": PRACTICAL_FLOOR,
        "glitch_floor": GLITCH_FLOOR,
        "fluctuation_score": noise.score,
        "val_accuracy_standard_error": noise.sampling,
        "training_movement": noise.training_movement,
        "replicates_pooled": noise.replicates,
        "observed_movement": noise.observed,
        "val_loss_standard_error": noise.loss_se,
        # The names the curve plots read (reporting.folder_plots.noise_band).
        "val_accuracy_expected_noise": noise.expected,
        "val_loss_expected_noise": noise.loss_se,
        "beyond_noise": decomposition.beyond_noise,
    }
    if noise.movement is not None:
        evidence["movement_sd"] = noise.movement.scale
        evidence["movement_allowed"] = noise.movement.allowed
        evidence["movement_p"] = noise.movement.p_value
    g = noise.glitch or noise.glitch_at_floor
    if g is not None:
        evidence["glitch_epoch"] = noise.glitch_epoch
        evidence["glitch_size"] = g.size
        evidence["glitch_p_adjusted"] = noise.glitch.p_value if noise.glitch else None
        evidence["glitch_p_at_floor"] = (
            noise.glitch_at_floor.p_value if noise.glitch_at_floor else None
        )
        evidence["glitch_beyond"] = noise.glitch_beyond
    if noise.churn is not None and noise.churn.fractions.size:
        evidence["churn_largest"] = float(noise.churn.fractions.max())
        evidence["churn_largest_mcnemar_p"] = noise.churn.mcnemar_p(noise.churn.largest)
    for name in ("total", "sampling", "training", "rest"):
        evidence[f"share_{name}"] = decomposition.share(getattr(decomposition, name))
    return evidence


def check_sampling_noise(
    noise: NoiseEstimate,
    decomposition: Decomposition,
    settings: RunSettings,
    unchecked: list[str],
) -> Finding:
    """The noise model of the curve, its tests and where its movement comes from (info)."""
    beyond = decomposition.beyond_noise
    loss_text = ""
    if noise.loss_se is not None:
        source = (
            "the per-image losses of each epoch (validation record)"
            if noise.loss_se_source == "record"
            else "the final model's per-image losses (no validation record)"
        )
        loss_text = (
            f" val_loss (±{noise.loss_se:.3g} from {source}) is not used: a few confidently "
            "wrong images dominate it."
        )
    not_run = f" Checks that could not run: {', '.join(unchecked)}." if unchecked else ""
    if beyond:
        cause = decomposition.cause
        verdict = (
            f" The curve moves beyond its noise: {cause} is the cause (see it)."
            if cause != UNEXPLAINED
            else f" The curve moves beyond its noise and no check explains why ({UNEXPLAINED})."
        )
        fix = "see the cause named above"
    else:
        movers = "ordinary training" if noise.fixed_set else "sampling and ordinary training"
        verdict = f" Within its noise: the curve moves as {movers} make it move."
        significant = noise.glitch_significant and not noise.glitch_beyond
        if significant:
            verdict += (
                f" (Epoch {noise.glitch_epoch}'s excess is statistically clear but below the "
                f"glitch floor of {_points(GLITCH_FLOOR)}.)"
            )
        fix = "nothing must change"
        if not noise.fixed_set and settings.validation_steps is not None:
            fix += (
                f"; to remove the sampling noise, set {settings.key('validation_steps')}: null "
                f"so every epoch scores all {noise.validation_images} images"
            )
    return Finding(
        SAMPLING_NOISE,
        "info",
        f"Validation curve moves {'beyond' if beyond else 'within'} its noise "
        "(validation sampling and ordinary training movement)",
        evidence_of(noise, decomposition),
        _set_sentence(noise)
        + _warmup_sentence(noise)
        + _movement_sentence(noise)
        + _tests_sentence(noise)
        + " "
        + _decomposition_sentence(decomposition)
        + verdict
        + loss_text
        + not_run,
        fix,
    )


def check_unexplained(
    noise: NoiseEstimate, decomposition: Decomposition, settings: RunSettings
) -> Finding | None:
    """UNEXPLAINED_FLUCTUATION: beyond noise, and no check with evidence claims it."""
    if decomposition.cause != UNEXPLAINED:
        return None
    where = (
        f"epoch {decomposition.glitch_epoch} lies beyond both neighbours"
        if decomposition.glitch_epoch is not None and not noise.movement_beyond
        else "the curve moves beyond its noise throughout"
    )
    basis = {
        "per epoch": "precise BatchNorm statistics at those epochs do not remove it",
        "final model only": "BatchNorm evidence exists for the final model only (per-epoch "
        "weights were not kept), which cannot say what moved earlier epochs",
        "none": "there is no model evidence (no BatchNorm layers, no model, or no weights)",
    }[decomposition.evidence]
    lr = settings.learning_rate
    change = {"learning_rate": float(f"{lr / 3:.2g}")} if lr else None
    return Finding(
        UNEXPLAINED,
        "warning",
        "Validation curve fluctuates beyond its noise; no check explains why",
        {
            "fluctuation_score": noise.score,
            "glitch_epoch": decomposition.glitch_epoch,
            "share_unexplained": decomposition.share(decomposition.unexplained),
        },
        f"{where[0].upper()}{where[1:]}, beyond validation sampling and ordinary training "
        f"movement; {basis}, and no batch-loss spikes were found. The model itself changes "
        f"more between epochs than training at this setting ordinarily moves it.",
        f"lower {settings.key('learning_rate')}"
        + (f" (now {lr:g})" if lr else "")
        + f" or raise {settings.key('batch_size')} (now {settings.batch_size}); pick the "
        "model by a robust measure (precise-BN accuracy, or the mean of the last epochs) "
        "rather than the last epoch",
        change,
    )


def check_stable(
    findings: list[Finding], noise: NoiseEstimate | None, unchecked: list[str]
) -> Finding | Skipped | None:
    if any(finding.severity != "info" for finding in findings):
        return None
    if noise is None or noise.score is None:
        return Skipped("STABLE", "no validation curve with a noise model to judge")
    not_run = f" Checks that could not run: {', '.join(unchecked)}." if unchecked else ""
    return Finding(
        "STABLE",
        "info",
        "Learning curve is stable",
        {"fluctuation_score": noise.score, "epochs": noise.epochs},
        f"No check found a problem, and the validation curve moves {noise.score:.2f}× what "
        f"validation sampling and ordinary training movement explain, which the tests at "
        f"the tests accept as noise.{not_run}",
        "nothing to change",
    )
