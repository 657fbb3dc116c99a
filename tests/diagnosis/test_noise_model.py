"""The noise model: fixed vs shuffled validation, the paired record, glitches and dispersion."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simtrain.diagnosis.curve_tests import beyond_both_neighbours_p, neighbour_glitch
from simtrain.diagnosis.diagnostics import diagnose
from simtrain.diagnosis.validation_record import ValidationRecord

FIXED_2000 = dict(train_images=8_000, validation_images=2_000, batch_size=32)
ORIGINAL = dict(
    train_images=32_000,
    validation_images=8_000,
    batch_size=128,
    steps_per_epoch=31,
    validation_steps=9,
    validation_shuffle=True,
)


def finding(result, code):
    return next((item for item in result.findings if item.code == code), None)


def converged_history(val_accuracy: np.ndarray) -> pd.DataFrame:
    epochs = np.arange(1, len(val_accuracy) + 1)
    return pd.DataFrame(
        {
            "epoch": epochs,
            "loss": 0.2 + 1.2 * np.exp(-epochs / 2),
            "accuracy": 0.98 - 0.7 * np.exp(-epochs / 2),
            "val_loss": 0.45 + 1.0 * np.exp(-epochs / 2),
            "val_accuracy": val_accuracy,
        }
    )


def collapse_curve() -> np.ndarray:
    """Climbs smoothly to 0.84, drops to 0.47 for one epoch, returns to 0.84 (the issue's case)."""
    curve = 0.84 - 0.6 * np.exp(-np.arange(1, 13) / 2)
    curve[8] = 0.47
    return np.round(curve * 2_000) / 2_000


def margins_record(
    epochs: int, images: int, seed: int, collapse_at: int | None = None
) -> ValidationRecord:
    """A fixed set under the benchmark's model: difficulty + skill + per-epoch jitter."""
    rng = np.random.default_rng(seed)
    skill = -0.8 + 1.8 * (1 - np.exp(-np.arange(1, epochs + 1) / (epochs / 5)))
    margins = rng.standard_normal(images) + skill[:, None]
    margins = margins + 0.3 * rng.standard_normal((epochs, images))
    if collapse_at is not None:
        margins[collapse_at - 1] -= 0.8
    return ValidationRecord(
        correct=(margins > 0).astype(np.int8),
        loss=np.logaddexp(0, -3 * margins).astype(np.float32),
    )


def history_of(record: ValidationRecord) -> pd.DataFrame:
    history = converged_history(record.accuracy())
    return history.assign(val_loss=record.mean_loss())


def test_one_epoch_collapse_on_a_fixed_set_from_a_csvlogger_alone_is_not_stable():
    result = diagnose(converged_history(collapse_curve()), run="cli", **FIXED_2000)
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.severity == "warning"
    assert noise.evidence["glitch_epoch"] == 9
    assert noise.evidence["glitch_p_adjusted"] < 1e-6
    assert finding(result, "STABLE") is None
    assert "only because the model changed" in noise.explanation


def test_the_record_makes_the_glitch_test_paired_and_names_the_epoch():
    record = margins_record(12, 2_000, seed=3, collapse_at=8)
    result = diagnose(history_of(record), run="paired", **FIXED_2000, validation_record=record)
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.severity == "warning"
    assert noise.evidence["glitch_epoch"] == 8
    assert noise.evidence["glitch_test_paired"] is True
    assert noise.evidence["churn_largest_mcnemar_p"] < 1e-6
    assert "right at epochs 7 and 9 but wrong at 8" in noise.explanation


@pytest.mark.parametrize("seed", range(6))
def test_clean_fixed_set_with_a_record_raises_no_warning(seed):
    record = margins_record(20, 2_000, seed=seed)
    result = diagnose(history_of(record), run="clean", **FIXED_2000, validation_record=record)
    assert [f.code for f in result.findings if f.severity != "info"] == []
    assert finding(result, "STABLE") is not None


def test_clean_shuffled_partial_curves_at_their_sampling_noise_rarely_raise_a_warning():
    m, n, warnings = 1_152, 8_000, 0
    trend = 0.85 - 0.5 * np.exp(-np.arange(1, 31) / 4)
    se = np.sqrt(trend * (1 - trend) / m * (n - m) / (n - 1))
    scores = []
    for seed in range(40):
        noisy = trend + se * np.random.default_rng(seed).standard_normal(30)
        result = diagnose(converged_history(noisy), run="s", **ORIGINAL)
        warnings += finding(result, "VALIDATION_SAMPLING_NOISE").severity == "warning"
        scores.append(result.fluctuation_score)
    # Two tests at 1 % each: about 0.8 of 40 expected; 3 or more has probability < 5 %.
    assert warnings <= 2
    assert 0.8 < np.median(scores) < 1.2


def test_finite_population_factor_shrinks_the_standard_error_of_shuffled_partial_validation():
    history = converged_history(np.full(10, 0.8))
    shuffled = finding(diagnose(history, run="s", **ORIGINAL), "VALIDATION_SAMPLING_NOISE")
    factor = math.sqrt((8_000 - 1_152) / (8_000 - 1))
    assert shuffled.evidence["finite_population_factor"] == pytest.approx(factor, rel=1e-3)
    binomial = math.sqrt((922 / 1_154) * (1 - 922 / 1_154) / 1_152)
    assert shuffled.evidence["val_accuracy_standard_error"] == pytest.approx(
        factor * binomial, rel=1e-2
    )
    assert shuffled.evidence["fixed_validation_set"] is False
    assert "√((N−m)/(N−1))" in shuffled.explanation


def test_dispersion_test_flags_a_curve_jumping_everywhere_by_several_standard_errors():
    rng = np.random.default_rng(0)
    trend = 0.85 - 0.5 * np.exp(-np.arange(1, 31) / 4)
    se = math.sqrt(0.8 * 0.2 / 2_000)
    result = diagnose(
        converged_history(trend + 3 * se * rng.standard_normal(30)), run="j", **FIXED_2000
    )
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.severity == "warning"
    assert noise.evidence["dispersion_p"] < 0.01
    assert result.fluctuation_score > 2


def test_too_few_epochs_for_the_dispersion_test_are_stated():
    result = diagnose(converged_history(np.array([0.5, 0.7, 0.8, 0.82])), run="short", **FIXED_2000)
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.evidence["dispersion_p"] is None
    assert "fewer than 8" in noise.explanation


def test_neighbour_tail_probability_matches_simulation_and_trend_does_not_trigger_it():
    rng = np.random.default_rng(1)
    draws = rng.standard_normal((200_000, 3))
    simulated = (np.minimum(draws[:, 0], draws[:, 2]) - draws[:, 1] > 2.5).mean()
    assert beyond_both_neighbours_p(2.5, 1, 1, 1) == pytest.approx(simulated, rel=0.1)
    steep = np.array([0.2, 0.6, 0.75, 0.8, 0.82, 0.83])  # concave learning, no glitch
    assert neighbour_glitch(steep, np.full(6, 0.01)).p_adjusted == 1.0


def test_only_causes_that_can_make_a_curve_jump_are_named():
    result = diagnose(
        converged_history(collapse_curve()),
        run="named",
        **{**ORIGINAL, "validation_steps": None, "validation_images": 2_000},
        train_label_counts={"a": 900, "b": 100},
    )
    assert finding(result, "PARTIAL_EPOCH") is not None
    assert finding(result, "CLASS_IMBALANCE") is not None
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.severity == "warning"
    assert "PARTIAL_EPOCH" not in noise.explanation and "CLASS_IMBALANCE" not in noise.explanation
    assert "no check that ran explains why" in noise.explanation


def test_checks_that_could_not_run_are_listed_even_beside_warnings():
    result = diagnose(converged_history(collapse_curve()), run="listed", **ORIGINAL)
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert "Checks that could not run:" in noise.explanation
    assert "BATCHNORM_STATISTICS" in noise.explanation
    assert "## Skipped checks" in result.to_markdown()
    assert "skipped UNSTABLE_OPTIMIZATION" in result.to_text()
