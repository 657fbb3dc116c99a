"""Tests behind the comparison: intervals for accuracy, paired tests between runs.

A run's final accuracy varies with the validation images drawn (sampling) and with the
training seed (initialisation, augmentation, batch order). One replicate measures only the
first: its Wilson interval and McNemar test leave the training variance unknown. Replicates
(`repeats`) measure both, each counted once (`variance_components`). Coverage and error rates
are measured on simulated runs in tests/reporting/test_statistics.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binomtest
from scipy.stats import t as t_distribution

from simtrain.reporting.variance_components import (
    difference_interval,
    difference_variance,
    mean_variance,
    replicate_matrix,
    run_interval,
    wilson,
)

# The normal distribution's 97.5 % point: a 95 % interval (the same as run_interval's).
Z_95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion; stays inside [0, 1] and works at 0 % and 100 %."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"wilson_interval needs 0 <= correct <= n and n > 0, got {correct}/{n}")
    low, high = wilson(correct / n, n, z)
    return float(low), float(high)


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


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate), in the given order.

    Rejecting where adjusted p < alpha keeps the chance of any false rejection among the
    tests <= alpha, whatever their dependence. NaN (no test) stays NaN and is not counted.
    """
    values = np.asarray(p_values, dtype=float)
    adjusted = np.full(values.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(values))
    order = tested[np.argsort(values[tested], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * values[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class AccuracyInterval:
    """Mean final accuracy over replicates with a 95 % interval, and what the interval covers."""

    mean: float
    low: float
    high: float
    replicates: int
    seed_sd: float  # NaN for one replicate
    method: str


def accuracy_interval(correct: np.ndarray, level: float = 0.95) -> AccuracyInterval:
    """95 % interval of a run's mean final accuracy over seeds and validation images.

    One replicate: Wilson over the validation images (their sampling only; the training
    variance is unknown). Several: the variance components of the mean (seeds and images,
    each once) on Satterthwaite degrees of freedom, as a logit-scale score interval, which
    keeps both tails near 2.5 % where seeds spread widely (`variance_components`).
    """
    matrix = replicate_matrix(correct)
    if matrix.ndim != 2:
        raise ValueError(f"need (replicates, images) right/wrong values, got {matrix.shape}")
    replicates = len(matrix)
    mean, low, high = (float(v) for v in run_interval(matrix, level))
    if replicates == 1:
        return AccuracyInterval(mean, low, high, 1, math.nan, "Wilson, 1 seed: images only")
    seed_sd = float(np.std(matrix.mean(axis=1), ddof=1))
    parts = mean_variance(matrix)
    if parts.variance == 0:
        method = f"Wilson, {replicates} identical seeds: images only"
    else:
        method = f"{replicates} seeds + images, {float(parts.df):.1f} df"
    return AccuracyInterval(mean, low, high, replicates, seed_sd, method)


@dataclass(frozen=True)
class AccuracyTest:
    """Is run A's final accuracy different from run B's on the same validation images?"""

    difference: float  # mean accuracy of A minus B
    p_value: float  # two-sided
    test: str
    only_a_right: int | None = None  # McNemar's discordant counts (one replicate each)
    only_b_right: int | None = None
    low: float = math.nan  # 95 % interval of the difference
    high: float = math.nan
    paired: bool = False  # replicates paired seed by seed


def _matrices(a: np.ndarray, b: np.ndarray, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = replicate_matrix(a), replicate_matrix(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"need (replicates, images) right/wrong values, got {a.shape}, {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"runs scored different numbers of images: {a.shape[1]} vs {b.shape[1]}")
    if paired and a.shape != b.shape:
        raise ValueError(f"paired runs need the same replicates: {a.shape} vs {b.shape}")
    return a, b


def _paired_t(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Difference, its standard error and degrees of freedom, seeds paired row by row."""
    parts = difference_variance(a, b, paired=True)
    return float(parts.mean), math.sqrt(float(parts.variance)), float(parts.df)


def _level_at_bound(a: np.ndarray, b: np.ndarray, bound: float, side: int) -> float:
    """1 - the two-sided level at which the MOVER interval's lower (side -1) or upper (+1)
    end reaches `bound`: a p-value by inverting the intervals (which widen with the level)."""

    def gap(log_p: float) -> float:
        ends = difference_interval(a, b, level=1 - 10**log_p)
        return float(ends[1] - bound) if side < 0 else float(bound - ends[2])

    if gap(0.0) <= 0:  # the zero-width interval (the estimate) already reaches the bound
        return 1.0
    if gap(-15.0) > 0:
        return 1e-15
    return 10 ** brentq(gap, -15.0, 0.0, xtol=1e-6)


def compare_accuracy(
    correct_a: np.ndarray, correct_b: np.ndarray, *, paired: bool = False
) -> AccuracyTest:
    """Comparison of two runs scored on the same validation images, with a 95 % interval of
    the difference in mean accuracy (A - B).

    One replicate each: exact McNemar on the images where exactly one is right (conditions on
    the two trained models: the training variance is unknown). `paired` (row k of both runs
    trained with the same seed, `pair_by_seed`): a t test on the seed-by-seed differences
    whose variance counts seeds (the seed × change interaction) and images once each.
    Otherwise each run's interval combined by MOVER (`difference_interval`), its p-value by
    inverting the intervals. A one-seed run adds no training-variance term: its seed's luck
    counts as the run's.
    """
    a, b = _matrices(correct_a, correct_b, paired)
    if paired and len(a) > 1:
        difference, standard_error, df = _paired_t(a, b)
        half = float(t_distribution.ppf(0.975, df)) * standard_error
        if standard_error == 0:
            p_value = 1.0 if difference == 0 else 0.0
        else:
            p_value = float(2 * t_distribution.sf(abs(difference) / standard_error, df))
        name = f"seeds + images, paired by seed (t, {df:.1f} df)"
        return AccuracyTest(
            difference, p_value, name, low=difference - half, high=difference + half, paired=True
        )
    difference, low, high = (float(v) for v in difference_interval(a, b))
    interval = {"low": low, "high": high, "paired": paired}
    if len(a) == 1 and len(b) == 1:
        only_a, only_b, p_value = mcnemar(a[0] > 0.5, b[0] > 0.5)
        return AccuracyTest(difference, p_value, "exact McNemar", only_a, only_b, **interval)
    side = -1 if difference > 0 else 1
    p_value = 1.0 if difference == 0 else _level_at_bound(a, b, 0.0, side)
    return AccuracyTest(difference, p_value, "seeds + images, unpaired (MOVER)", **interval)


@dataclass(frozen=True)
class NonInferiority:
    """Is run A's accuracy no more than `margin` below run B's (same validation images)?"""

    difference: float  # mean accuracy of A (after) minus B (before)
    lower_bound: float  # one-sided lower confidence bound of the difference, at `level`
    margin: float
    p_value: float  # one-sided, H0: difference <= -margin
    test: str

    @property
    def non_inferior(self) -> bool:
        """The lower bound clears -margin (equivalently p < 1 - level)."""
        return self.lower_bound > -self.margin


def non_inferiority(
    correct_after: np.ndarray,
    correct_before: np.ndarray,
    margin: float,
    *,
    paired: bool = False,
    level: float = 0.95,
) -> NonInferiority:
    """Non-inferiority of `after` to `before` with a stated accuracy margin (e.g. 0.02).

    One-sided test of H0: mean(after) - mean(before) <= -margin, on the same variance
    components as `compare_accuracy` (paired: t on the seed-by-seed differences; otherwise
    MOVER; with one replicate each the images only, training variance unknown). Rejecting H0
    (p < 1 - level, lower bound > -margin) shows the accuracy fell by less than the margin,
    which "not significantly lower" does not.
    """
    if not 0 <= margin < 1:
        raise ValueError(f"non_inferiority: margin must be in [0, 1), got {margin}")
    after, before = _matrices(correct_after, correct_before, paired)
    if paired and len(after) > 1:
        difference, standard_error, df = _paired_t(after, before)
        lower = difference - float(t_distribution.ppf(level, df)) * standard_error
        if standard_error == 0:
            p_value = 0.0 if difference > -margin else 1.0
        else:
            p_value = float(t_distribution.sf((difference + margin) / standard_error, df))
        how = f"paired by seed, {df:.1f} df"
    else:
        ends = difference_interval(after, before, level=2 * level - 1)
        difference, lower = float(ends[0]), float(ends[1])
        if difference > -margin:
            p_value = _level_at_bound(after, before, -margin, -1) / 2
        else:  # the estimate is past the margin: p >= 1/2, from the upper end
            p_value = 1 - _level_at_bound(after, before, -margin, 1) / 2
        how = "unpaired (MOVER)"
        if max(len(after), len(before)) == 1:
            how += ", one seed: training variance unknown"
    test = f"non-inferiority, margin {margin:g}, seeds + images, {how}"
    return NonInferiority(difference, lower, margin, p_value, test)
