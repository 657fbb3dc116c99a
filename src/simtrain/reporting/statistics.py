"""Tests behind the comparison: intervals for accuracy, paired tests between runs.

A run's final accuracy varies with the validation images drawn (sampling) and with the
training seed (initialisation, augmentation, batch order). One replicate measures only the
first; replicates (`repeats`) measure both, and the interval and tests below then count both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from scipy.stats import t as t_distribution


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion; stays inside [0, 1] and works at 0 % and 100 %."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"wilson_interval needs 0 <= correct <= n and n > 0, got {correct}/{n}")
    p = correct / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """Exact McNemar test: (b = only A right, c = only B right, two-sided p-value).

    Images both runs get right or both get wrong say nothing about which is better, so only the
    discordant pairs count; under "equally good" each is A's with probability 1/2.
    """
    correct_a = np.asarray(correct_a, dtype=bool)
    correct_b = np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(
            f"mcnemar needs paired results on the same images, got {correct_a.shape} "
            f"and {correct_b.shape}"
        )
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    p_value = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return b, c, p_value


@dataclass(frozen=True)
class AccuracyInterval:
    """Mean final accuracy over replicates with a 95 % interval, and what the interval covers."""

    mean: float
    low: float
    high: float
    replicates: int
    seed_sd: float  # NaN for one replicate
    method: str


def _correct_matrix(correct: np.ndarray) -> np.ndarray:
    """(replicates, images) of 0/1; a single replicate may be given as a 1-D array."""
    matrix = np.atleast_2d(np.asarray(correct, dtype=float))
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"need (replicates, images) right/wrong values, got shape {matrix.shape}")
    return matrix


def _mean_variance(matrix: np.ndarray) -> tuple[float, float]:
    """Variance of the mean accuracy over replicates: seed-to-seed (training) variance over the
    replicates plus the images' sampling variance over the validation set. Conservative: the
    per-image means still carry some training noise, counted twice."""
    replicates, images = matrix.shape
    seeds = float(np.var(matrix.mean(axis=1), ddof=1)) / replicates if replicates > 1 else 0.0
    return seeds, float(np.var(matrix.mean(axis=0), ddof=1)) / images


def accuracy_interval(correct: np.ndarray, level: float = 0.95) -> AccuracyInterval:
    """95 % interval of a run's mean final accuracy.

    One replicate: Wilson over the validation images (validation sampling only; it ignores
    training variance, which one seed cannot measure). Several: mean ± t(n - 1) · SE with
    SE² = seed variance / n + image variance / images (both sources), clipped to [0, 1].
    n - 1 degrees of freedom are conservative when the images dominate, but a few seeds
    cannot show that the seed variance is small: Welch-Satterthwaite degrees of freedom
    covered 91-92 % instead of 95 % at 3 seeds (tests/reporting/test_statistics.py).
    """
    matrix = _correct_matrix(correct)
    replicates, images = matrix.shape
    per_seed = matrix.mean(axis=1)
    mean = float(per_seed.mean())
    if replicates == 1:
        low, high = wilson_interval(int(round(matrix.sum())), images)
        return AccuracyInterval(mean, low, high, 1, math.nan, "Wilson, 1 seed: images only")
    seeds, image_part = _mean_variance(matrix)
    half = float(t_distribution.ppf(0.5 + level / 2, replicates - 1)) * math.sqrt(
        seeds + image_part
    )
    return AccuracyInterval(
        mean,
        max(0.0, mean - half),
        min(1.0, mean + half),
        replicates,
        float(np.std(per_seed, ddof=1)),
        f"t over {replicates} seeds + images",
    )


@dataclass(frozen=True)
class AccuracyTest:
    """Is run A's final accuracy different from run B's on the same validation images?"""

    difference: float  # mean accuracy of A minus B
    p_value: float  # two-sided
    test: str
    only_a_right: int | None = None  # McNemar's discordant counts (one replicate each)
    only_b_right: int | None = None


def compare_accuracy(correct_a: np.ndarray, correct_b: np.ndarray) -> AccuracyTest:
    """Paired comparison of two runs scored on the same validation images.

    One replicate each: exact McNemar on the images where exactly one is right (conditions on
    the two trained models: training variance is not counted). Otherwise a t test on the
    difference of mean accuracies whose variance adds each run's seed-to-seed variance / n
    and the images' variance of the per-image difference / images, on n - 1 degrees of
    freedom of the run with fewer seeds (of those with several; conservative, as in
    `accuracy_interval`). A one-seed run adds no training-variance term: its seed's luck
    counts as the run's.
    """
    a, b = _correct_matrix(correct_a), _correct_matrix(correct_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"runs scored different numbers of images: {a.shape[1]} vs {b.shape[1]}")
    difference = float(a.mean() - b.mean())
    if len(a) == 1 and len(b) == 1:
        only_a, only_b, p_value = mcnemar(a[0] > 0.5, b[0] > 0.5)
        return AccuracyTest(difference, p_value, "exact McNemar", only_a, only_b)
    seeds_a = _mean_variance(a)[0]
    seeds_b = _mean_variance(b)[0]
    paired = a.mean(axis=0) - b.mean(axis=0)
    images = float(np.var(paired, ddof=1)) / paired.size
    variance = seeds_a + seeds_b + images
    df = min(len(m) - 1 for m in (a, b) if len(m) > 1)
    if variance == 0:
        p_value = 1.0 if difference == 0 else 0.0
    else:
        t = difference / math.sqrt(variance)
        p_value = float(2 * t_distribution.sf(abs(t), df))
    return AccuracyTest(difference, p_value, f"t, seeds + images, {df} df")
