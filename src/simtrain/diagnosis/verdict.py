"""The verdict on a validation curve: VALIDATION_SAMPLING_NOISE (within or beyond its noise) and
STABLE. The statistics are in `noise` and `curve_tests`; this module turns them into words,
names the causes found and always lists the checks that could not run."""

from __future__ import annotations

import numpy as np

from simtrain.diagnosis.curve_tests import MIN_EPOCHS_FOR_DISPERSION
from simtrain.diagnosis.findings import Finding, RunSettings, Skipped
from simtrain.diagnosis.noise import ALPHA, SAMPLING_NOISE, NoiseEstimate


def _p(value: float) -> str:
    return "p<1e-6" if value < 1e-6 else f"p={value:.2g}"


def _set_sentence(noise: NoiseEstimate) -> str:
    m, n, se = noise.images_scored, noise.validation_images, float(noise.accuracy_se.mean())
    if noise.fixed_set:
        text = (
            f"Every epoch scored the same {m} validation images, so consecutive epochs differ "
            f"only because the model changed, not because of sampling. "
        )
        if noise.churn is not None and noise.churn.fractions.size:
            c = noise.churn
            pair = c.largest
            first, second = noise.epoch_numbers[pair], noise.epoch_numbers[pair + 1]
            text += (
                f"The validation record measures that change: between consecutive epochs a "
                f"median {float(np.median(c.fractions)):.1%} of the images "
                f"flipped between right and wrong, most between epochs {first} and {second} "
                f"({c.fractions[pair]:.1%}: {c.right_to_wrong[pair]} right→wrong, "
                f"{c.wrong_to_right[pair]} wrong→right, exact McNemar {_p(c.mcnemar_p(pair))}). "
            )
        return text + (
            f"As a yardstick for that change the tests use the binomial standard error of a "
            f"freshly drawn set of {m} images (±{se:.3g}), which a fixed set exceeds only when "
            f"the model jumps: a conservative assumption."
        )
    return (
        f"Each epoch scored a different random {m} of the {n} validation images (shuffled "
        f"partial validation), so the curve carries sampling noise: a binomial standard error "
        f"times the finite-population factor √((N−m)/(N−1)) = "
        f"{noise.finite_population_factor:.3f}, ±{se:.3g} on average."
    )


def _tests_sentence(noise: NoiseEstimate) -> str:
    parts = []
    d = noise.dispersion
    if d is not None and d.p_value is not None:
        parts.append(
            f"around a fitted learning trend (a + b·exp(−t/τ) + c·t) val_accuracy moves "
            f"{d.ratio:.2g}× its standard error (χ²={d.chi_squared:.3g} on "
            f"{d.degrees_of_freedom} degrees of freedom, {_p(d.p_value)})"
        )
    else:
        parts.append(
            f"the dispersion test did not run: {noise.epochs} epochs, fewer than "
            f"{MIN_EPOCHS_FOR_DISPERSION} (4 trend parameters leave too few degrees of freedom)"
        )
    g = noise.glitch
    if g is not None:
        epoch = noise.epoch_numbers[g.epoch_index]
        where = "below" if g.kind == "dip" else "above"
        text = f"the most extreme single epoch is {epoch}, {where} both neighbours"
        if g.method == "paired":
            text += (
                f" ({g.right_then_wrong_then_right} images right at epochs {epoch - 1} and "
                f"{epoch + 1} but wrong at {epoch}, {g.wrong_then_right_then_wrong} the reverse; "
                f"exact paired test"
            )
        else:
            text += f" by {g.size:.3g} (against the noise of three epochs"
        text += f", {_p(g.p_adjusted)} after Bonferroni over {g.tested} epochs)"
        parts.append(text)
    return "Tests at α=" + f"{ALPHA:g}: " + "; ".join(parts) + "."


def check_sampling_noise(
    noise: NoiseEstimate, settings: RunSettings, causes: list[str], unchecked: list[str]
) -> Finding:
    """Within or beyond its noise; names the `causes` found and always the checks `unchecked`."""
    beyond = noise.beyond_band
    evidence: dict = {
        "validation_images_scored_per_epoch": noise.images_scored,
        "validation_images": noise.validation_images,
        "fixed_validation_set": noise.fixed_set,
        "finite_population_factor": noise.finite_population_factor,
        "epochs": noise.epochs,
        "alpha": ALPHA,
        "fluctuation_score": noise.score,
        "val_accuracy_standard_error": float(noise.accuracy_se.mean()),
        "val_loss_standard_error": noise.loss_se,
        # The names the curve plots read (reporting.artifacts.noise_band): the same values.
        "val_accuracy_expected_noise": float(noise.accuracy_se.mean()),
        "val_loss_expected_noise": noise.loss_se,
    }
    evidence["dispersion_p"] = None  # not run below MIN_EPOCHS_FOR_DISPERSION
    if noise.dispersion is not None:
        evidence["dispersion_chi_squared"] = noise.dispersion.chi_squared
        evidence["dispersion_degrees_of_freedom"] = noise.dispersion.degrees_of_freedom
        evidence["dispersion_p"] = noise.dispersion.p_value
    if noise.glitch is not None:
        evidence["glitch_epoch"] = int(noise.epoch_numbers[noise.glitch.epoch_index])
        evidence["glitch_size"] = noise.glitch.size
        evidence["glitch_p_adjusted"] = noise.glitch.p_adjusted
        evidence["glitch_test_paired"] = noise.glitch.method == "paired"
    if noise.churn is not None and noise.churn.fractions.size:
        evidence["churn_largest"] = float(noise.churn.fractions.max())
        evidence["churn_largest_mcnemar_p"] = noise.churn.mcnemar_p(noise.churn.largest)
    loss_text = ""
    if noise.loss_se is not None:
        source = (
            "the per-image losses of each epoch (validation record)"
            if noise.loss_se_source == "record"
            else "the final model's per-image losses (no validation record)"
        )
        loss_text = f" val_loss has a standard error of ±{noise.loss_se:.3g} from {source}."
    metric = (
        " val_accuracy drives the verdict: its standard error follows from the number of images "
        "scored alone, while val_loss is dominated by a few confidently wrong images." + loss_text
    )
    not_run = f" Checks that could not run: {', '.join(unchecked)}." if unchecked else ""
    if not beyond:
        verdict = " Neither test finds more movement than that noise: the curve is " + (
            "the model's ordinary epoch-to-epoch change."
            if noise.fixed_set
            else "what sampling that many images produces."
        )
        fix = "nothing must change"
        if not noise.fixed_set and settings.validation_steps is not None:
            fix += (
                f"; to remove the sampling noise, set {settings.key('validation_steps')}: null "
                f"so every epoch scores all {noise.validation_images} images"
            )
    else:
        verdict = " The curve moves more than its noise: the model itself jumps between epochs; "
        verdict += (
            f"see {', '.join(causes)} for why." if causes else "no check that ran explains why."
        )
        fix = (
            "remove the causes named above"
            if causes
            else (
                f"lower {settings.key('learning_rate')} or raise {settings.key('batch_size')} "
                f"(now {settings.batch_size}); compare with a run that recomputes BatchNorm "
                f"statistics without augmentation"
            )
        )
    return Finding(
        SAMPLING_NOISE,
        "warning" if beyond else "info",
        f"Validation curve fluctuates {'beyond' if beyond else 'within'} its noise",
        evidence,
        _set_sentence(noise) + " " + _tests_sentence(noise) + verdict + metric + not_run,
        fix,
    )


def check_stable(
    findings: list[Finding], noise: NoiseEstimate | None, unchecked: list[str]
) -> Finding | Skipped | None:
    if any(finding.severity != "info" for finding in findings):
        return None
    if noise is None or noise.score is None:
        return Skipped("STABLE", "no validation curve with a known standard error to judge")
    not_run = f" Checks that could not run: {', '.join(unchecked)}." if unchecked else ""
    return Finding(
        "STABLE",
        "info",
        "Learning curve is stable",
        {"fluctuation_score": noise.score, "epochs": noise.epochs},
        f"No check found a problem, and the validation curve moves {noise.score:.2f}× its "
        f"standard error, which the tests at α={ALPHA:g} accept as noise.{not_run}",
        "nothing to change",
    )
