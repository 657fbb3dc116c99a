"""The noise model: sampling plus ordinary training movement, glitches, movement, the floor."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simtrain.diagnosis.curve_tests import glitch_test, movement_test
from simtrain.diagnosis.diagnostics import diagnose
from simtrain.diagnosis.noise import GLITCH_FLOOR, PRACTICAL_FLOOR
from simtrain.diagnosis.validation_record import ValidationRecord

FIXED_2000 = dict(train_images=8_000, validation_images=2_000, batch_size=32)
FIXED_10000 = dict(train_images=32_000, validation_images=10_000, batch_size=128)
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


def warnings(result) -> list[str]:
    return [f.code for f in result.findings if f.severity != "info"]


def converged_history(val_accuracy: np.ndarray) -> pd.DataFrame:
    epochs = np.arange(1, len(val_accuracy) + 1)
    return pd.DataFrame(
        {
            "epoch": epochs,
            "loss": 0.2 + 1.2 * np.exp(-epochs / 2),
            "accuracy": np.minimum(np.asarray(val_accuracy) + 0.03, 1),
            "val_loss": 0.45 + 1.0 * np.exp(-epochs / 2),
            "val_accuracy": val_accuracy,
        }
    )


def learning_curve(epochs: int, movement: float, seed: int) -> np.ndarray:
    """A saturating curve that moves `movement` (accuracy) around its trend each epoch."""
    trend = 0.9 - 0.5 * np.exp(-np.arange(1, epochs + 1) / 2)
    return trend + movement * np.random.default_rng(seed).standard_normal(epochs)


def test_a_calm_large_fixed_set_raises_no_alarm_where_the_sampling_yardstick_did():
    # 10 000 images move ~0.5 points an epoch with SGD: ten binomial standard errors of a
    # freshly drawn set of that size (0.3 points), which the old yardstick called a jump.
    alarms, scores = 0, []
    for seed in range(20):
        result = diagnose(
            converged_history(learning_curve(20, 0.005, seed)), run="c", **FIXED_10000
        )
        alarms += bool(warnings(result))
        scores.append(result.fluctuation_score)
    assert alarms <= 1
    assert 0.8 < np.median(scores) < 1.3 and max(scores) < 2  # ≈ 1: noise


def test_the_issues_textbook_curve_of_one_point_steps_is_within_its_noise():
    curve = np.array([0.87, 0.895, 0.877, 0.905, 0.896, 0.916, 0.923, 0.925, 0.928, 0.93])
    history = converged_history(curve)
    result = diagnose(
        history, run="cnn", train_images=15_000, validation_images=5_005, batch_size=32
    )
    assert warnings(result) == []
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.evidence["beyond_noise"] is False
    assert finding(result, "STABLE") is not None


def test_a_five_point_one_epoch_drop_on_a_calm_large_set_is_found_and_its_epoch_named():
    curve = learning_curve(20, 0.005, seed=3)
    curve[13] -= 0.05
    result = diagnose(converged_history(curve), run="drop", **FIXED_10000, learning_rate=0.001)
    assert result.fluctuation["beyond_noise"] is True
    assert result.fluctuation["glitch_epoch"] == 14
    assert result.fluctuation["cause"] == "UNEXPLAINED_FLUCTUATION"
    assert "UNEXPLAINED_FLUCTUATION" in warnings(result)


def test_a_statistically_clear_dip_below_the_practical_floor_is_no_warning():
    curve = learning_curve(20, 0.0015, seed=4)
    curve[12] -= 0.025  # 17 standard deviations of movement, but 2.5 points
    result = diagnose(converged_history(curve), run="small", **FIXED_10000)
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.evidence["glitch_p_adjusted"] < 0.01
    assert noise.evidence["glitch_size"] < PRACTICAL_FLOOR
    assert warnings(result) == []
    assert "below the glitch floor" in noise.explanation


def test_a_clear_three_and_a_half_point_dip_is_no_warning_but_a_four_and_a_half_point_one_is():
    # Between the practical floor and the glitch floor: real clean runs make such single dips.
    for drop, beyond in ((0.035, False), (0.045, True)):
        curve = learning_curve(20, 0.0015, seed=4)
        curve[12] -= drop
        result = diagnose(converged_history(curve), run="dip", **FIXED_10000)
        noise = finding(result, "VALIDATION_SAMPLING_NOISE")
        assert noise.evidence["glitch_p_adjusted"] < 0.01
        assert noise.evidence["glitch_size"] > PRACTICAL_FLOOR
        assert (noise.evidence["glitch_size"] >= GLITCH_FLOOR) is beyond
        assert result.fluctuation["beyond_noise"] is beyond, drop
        assert ("UNEXPLAINED_FLUCTUATION" in warnings(result)) is beyond


def test_movement_throughout_beyond_the_floor_is_beyond_noise():
    result = diagnose(
        converged_history(learning_curve(20, 0.08, seed=5)), run="jumpy", **FIXED_2000
    )
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.evidence["movement_p"] < 0.05
    assert result.fluctuation["beyond_noise"] is True
    assert result.fluctuation_score > 1.5


def test_shuffled_partial_curves_at_their_sampling_noise_are_within_noise():
    m, n, alarms = 1_152, 8_000, 0
    trend = 0.85 - 0.5 * np.exp(-np.arange(1, 31) / 4)
    se = np.sqrt(trend * (1 - trend) / m * (n - m) / (n - 1))
    scores = []
    for seed in range(30):
        noisy = trend + se * np.random.default_rng(seed).standard_normal(30)
        result = diagnose(converged_history(noisy), run="s", **ORIGINAL)
        alarms += result.fluctuation["beyond_noise"]
        scores.append(result.fluctuation_score)
        # PARTIAL_VALIDATION explains the sampling share, and only that.
        assert result.fluctuation["sampling_claimed_by"] == "PARTIAL_VALIDATION"
        assert "PARTIAL_VALIDATION" not in result.fluctuation["claimed_by"]
    assert alarms <= 1
    assert 0.7 < np.median(scores) < 1.3


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


def test_too_few_epochs_for_the_movement_test_are_stated():
    result = diagnose(converged_history(np.array([0.5, 0.7, 0.8, 0.82])), run="short", **FIXED_2000)
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.evidence.get("movement_p") is None
    assert "fewer than 8" in noise.explanation


@pytest.mark.parametrize("epochs", [10, 20])
def test_glitch_and_movement_tests_hold_their_level_on_pure_noise(epochs):
    rng = np.random.default_rng(epochs)
    curves = rng.standard_normal((800, epochs))
    glitch = np.mean([glitch_test(c).p_value < 0.05 for c in curves])
    movement = np.mean([movement_test(c, 1.0).p_value < 0.05 for c in curves])
    # 800 draws: the binomial 99.9 % range around 5 % is 2.8-7.7 %.
    assert 0.025 <= glitch <= 0.08 and 0.025 <= movement <= 0.08


def test_a_monotone_learning_rate_step_is_no_glitch():
    t = np.arange(1, 21)
    steps = 0.6 + 0.2 * (1 - np.exp(-t / 3)) + 0.1 * (t > 10) + 0.05 * (t > 15)
    assert glitch_test(steps).size == 0.0


def test_replicates_sharpen_the_movement_estimate_and_keep_the_level():
    rng = np.random.default_rng(7)
    found = {"alone": 0, "pooled": 0}
    null = 0
    for _ in range(200):
        own = rng.standard_normal(12)
        others = tuple(rng.standard_normal((2, 12)))
        null += glitch_test(own, replicates=others).p_value < 0.05
        own[7] -= 6  # six standard deviations below the trend
        found["alone"] += glitch_test(own).p_value < 0.01
        found["pooled"] += glitch_test(own, replicates=others).p_value < 0.01
    assert found["pooled"] > found["alone"] + 20
    assert 3 <= null <= 20  # 5 % of 200 is 10; the binomial 99.9 % range is 2-21
    assert glitch_test(own, replicates=others).method == "own and replicates' movement"


def test_checks_that_could_not_run_are_listed():
    result = diagnose(converged_history(learning_curve(12, 0.01, 1)), run="listed", **ORIGINAL)
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert "Checks that could not run:" in noise.explanation
    assert "BATCHNORM_STATISTICS" in noise.explanation
    assert "## Skipped checks" in result.to_markdown()
    assert "skipped UNSTABLE_OPTIMIZATION" in result.to_text()


def test_a_record_gives_churn_and_the_same_verdict_as_the_history_alone():
    rng = np.random.default_rng(2)
    skill = 0.9 - 0.5 * np.exp(-np.arange(1, 13) / 2)
    margins = rng.standard_normal(2_000) + 1.5 * skill[:, None] - 0.3
    margins = margins + 0.3 * rng.standard_normal((12, 2_000))
    record = ValidationRecord(
        correct=(margins > 0).astype(np.int8), loss=np.logaddexp(0, -3 * margins).astype("f4")
    )
    history = converged_history(record.accuracy()).assign(val_loss=record.mean_loss())
    with_record = diagnose(history, run="r", **FIXED_2000, validation_record=record)
    alone = diagnose(history, run="r", **FIXED_2000)
    assert finding(with_record, "VALIDATION_SAMPLING_NOISE").evidence["churn_largest"] > 0
    assert with_record.fluctuation["beyond_noise"] == alone.fluctuation["beyond_noise"]
