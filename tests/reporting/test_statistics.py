"""Intervals and tests over seed replicates: calibrated where the truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from simtrain.reporting.statistics import (
    accuracy_interval,
    compare_accuracy,
    wilson_interval,
)

IMAGES = 200


def experiment(rng, seeds: int, seed_sd: float, shift: float = 0.0) -> np.ndarray:
    """(seeds, images) right/wrong: a fresh validation set of images of varied difficulty,
    each training seed shifting the log-odds of every image by N(0, seed_sd)."""
    difficulty = logit(rng.beta(6, 3, IMAGES)) + shift  # population mean accuracy ~0.66
    effects = rng.normal(0, seed_sd, (seeds, 1))
    return rng.random((seeds, IMAGES)) < expit(difficulty + effects)


def true_accuracy(seed_sd: float, shift: float = 0.0, draws: int = 400_000) -> float:
    rng = np.random.default_rng(123)
    difficulty = logit(rng.beta(6, 3, draws)) + shift
    return float(expit(difficulty + rng.normal(0, seed_sd, draws)).mean())


@pytest.mark.parametrize("seed_sd", [0.0, 0.5])
def test_the_three_seed_interval_covers_the_true_accuracy_95_percent(seed_sd):
    rng = np.random.default_rng(1)
    truth = true_accuracy(seed_sd)
    covered = []
    for _ in range(600):
        interval = accuracy_interval(experiment(rng, 3, seed_sd))
        covered.append(interval.low <= truth <= interval.high)
    # 600 trials: a calibrated interval lands in [0.93, 0.97] with ~99 % probability; n - 1
    # degrees of freedom over-cover when the images dominate (seed_sd 0: ~1.0), never under.
    assert np.mean(covered) >= 0.93


def test_one_seed_under_training_variance_undercovers_as_the_docs_warn():
    rng = np.random.default_rng(2)
    truth = true_accuracy(0.5)
    hits = [
        accuracy_interval(experiment(rng, 1, 0.5)).low
        <= truth
        <= accuracy_interval(experiment(rng, 1, 0.5)).high
        for _ in range(300)
    ]
    assert np.mean(hits) < 0.90


def test_the_seed_aware_test_holds_its_false_alarm_rate_where_mcnemar_does_not():
    """Two runs of the same training procedure (no real difference), 3 seeds each vs one:
    the t test rejects ~5 %; McNemar on one seed each rejects far more, because it takes one
    seed's luck for a difference between the runs."""
    rng = np.random.default_rng(3)
    t_rejects, mcnemar_rejects = [], []
    for _ in range(300):
        difficulty = logit(rng.beta(6, 3, IMAGES))

        def run(seeds, difficulty=difficulty):
            effects = rng.normal(0, 0.5, (seeds, 1))
            return rng.random((seeds, IMAGES)) < expit(difficulty + effects)

        t_rejects.append(compare_accuracy(run(3), run(3)).p_value < 0.05)
        mcnemar_rejects.append(compare_accuracy(run(1), run(1)).p_value < 0.05)
    assert np.mean(t_rejects) <= 0.08
    assert np.mean(mcnemar_rejects) > 0.2


def test_the_seed_aware_test_finds_a_real_difference():
    rng = np.random.default_rng(4)
    difficulty = logit(rng.beta(6, 3, IMAGES))
    better = rng.random((3, IMAGES)) < expit(difficulty + 1.0)
    worse = rng.random((3, IMAGES)) < expit(difficulty)
    outcome = compare_accuracy(better, worse)
    assert outcome.difference > 0.1 and outcome.p_value < 0.05


def test_one_replicate_each_is_mcnemar_and_one_replicate_is_wilson():
    rng = np.random.default_rng(5)
    a, b = rng.random(IMAGES) < 0.7, rng.random(IMAGES) < 0.5
    outcome = compare_accuracy(a, b)
    assert outcome.test == "exact McNemar"
    assert outcome.only_a_right == int(np.sum(a & ~b))
    interval = accuracy_interval(a)
    assert (interval.low, interval.high) == wilson_interval(int(a.sum()), IMAGES)


def test_identical_replicates_differ_by_nothing():
    same = np.ones((2, 10), dtype=bool)
    assert compare_accuracy(same, same).p_value == 1.0
    with pytest.raises(ValueError, match="different numbers of images"):
        compare_accuracy(same, np.ones((2, 11), dtype=bool))
