"""Tests behind the comparison: Wilson intervals for accuracy, exact McNemar for paired runs."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest


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
