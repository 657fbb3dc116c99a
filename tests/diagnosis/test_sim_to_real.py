"""SIM_TO_REAL_GAP: named when validation and real accuracy differ beyond their noise, and
only then (false alarms at about the 5 % the test promises)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simtrain.diagnosis.sim_to_real import CODE, gap_test, sim_to_real_findings, sim_to_real_gap


def scored(rng, accuracy, images, replicates=1, seed_sd=0.0):
    """(validation, real) right/wrong of `replicates` seeds scoring `images` validation and
    real images; a seed's luck (sd seed_sd) moves its accuracy on both sets alike."""
    luck = seed_sd * rng.standard_normal(replicates)[:, None]
    return tuple(
        rng.random((replicates, n)) < np.clip(p + luck, 0, 1)
        for p, n in zip(accuracy, images, strict=True)
    )


@pytest.mark.parametrize("replicates", [1, 3])
def test_false_alarms_stay_near_five_percent_when_both_sets_are_alike(replicates):
    rng = np.random.default_rng(replicates)
    trials = 400
    alarms = sum(
        sim_to_real_gap(*scored(rng, (0.8, 0.8), (200, 120), replicates, 0.03), set_name="field")
        is not None
        for _ in range(trials)
    )
    assert alarms / trials < 0.09  # 5 % expected; conservative intervals give fewer


@pytest.mark.parametrize("replicates", [1, 3])
def test_a_real_gap_is_named_as_a_warning_with_its_evidence(replicates):
    rng = np.random.default_rng(10 + replicates)
    finding = sim_to_real_gap(*scored(rng, (0.95, 0.6), (400, 200), replicates), set_name="field")
    assert finding is not None and finding.code == CODE and finding.severity == "warning"
    assert finding.evidence["gap_ci_low"] > 0
    assert finding.evidence["real_images"] == 200
    assert "field" in finding.title and "worse" in finding.title


def test_real_images_classified_better_are_only_informative():
    rng = np.random.default_rng(5)
    finding = sim_to_real_gap(
        *scored(rng, (0.6, 0.95), (300, 300)), set_name="s", missing_classes=("rings",)
    )
    assert finding is not None and finding.severity == "info"
    assert "no images of rings" in finding.explanation


def test_one_seed_uses_newcombes_interval_and_several_a_t_test():
    validation = np.r_[np.ones(90), np.zeros(10)]
    real = np.r_[np.ones(30), np.zeros(20)]
    one = gap_test(validation, real)
    assert one.p_value is None and one.method.startswith("Newcombe")
    assert one.low < 0.3 < one.high and one.difference == pytest.approx(0.3)
    three = gap_test(np.stack([validation] * 3), np.stack([real] * 3))
    assert three.p_value is not None and three.method.startswith("t over 3 seeds")
    with pytest.raises(ValueError, match="score the same seeds on both"):
        gap_test(np.stack([validation] * 2), real)


def test_a_replicates_findings_come_from_its_prediction_tables():
    validation = pd.DataFrame({"true": ["a", "b"] * 50, "predicted": ["a", "b"] * 50})
    good = pd.DataFrame({"true": ["a"] * 40, "predicted": ["a"] * 40})
    bad = pd.DataFrame({"true": ["a", "b"] * 20, "predicted": ["b", "b"] * 20})
    findings = sim_to_real_findings(validation, {"good": good, "bad": bad}, ["a", "b", "c"])
    assert [f.title for f in findings] == [
        "Real images of 'bad' are classified worse than the validation images"
    ]
    assert "no images of c" in findings[0].explanation
