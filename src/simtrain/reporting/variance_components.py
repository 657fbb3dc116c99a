"""Variance components of a mean accuracy over seed replicates and validation images.

A run's final accuracy varies with the validation images drawn (sampling) and with the
training seed (initialisation, augmentation, batch order). Its (replicates, images)
right/wrong matrix y is read as a two-way crossed random-effects model

    y_si = mu + a_s + b_i + e_si

with a seed effect a_s (variance σa²), an image effect b_i (σb²) and a seed × image residual
e_si (σe², which holds the Bernoulli noise). The mean over n seeds and N images has variance
σa²/n + σb²/N + σe²/(nN), each part counted once, estimated from the two-way ANOVA mean
squares (for balanced data the REML estimates of the mixed model whenever they are positive;
a negative seed part is set to 0), on Satterthwaite degrees of freedom. One replicate
measures the images only: its training variance is unknown.

Every function takes (..., replicates, images) arrays, so the tests simulate thousands of
experiments at once (tests/reporting/test_statistics.py measures coverage and error rates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2
from scipy.stats import t as t_distribution


def pair_by_seed(
    seeds_a: Sequence[int], seeds_b: Sequence[int]
) -> tuple[list[int], list[int]] | None:
    """Row orders that put the same training seed in the same row of both runs, or None.

    A sibling trained with exactly one change shares its run's seeds (replicate k of both has
    seed s + k), so its replicates pair with the run's seed by seed; runs trained with
    different sets of seeds do not pair (None: compare them unpaired).
    """
    seeds_a, seeds_b = list(seeds_a), list(seeds_b)
    for seeds in (seeds_a, seeds_b):
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"pair_by_seed: a run's replicates repeat a seed: {seeds}")
    if set(seeds_a) != set(seeds_b):
        return None
    common = sorted(seeds_a)
    return [seeds_a.index(s) for s in common], [seeds_b.index(s) for s in common]


def replicate_matrix(correct: np.ndarray) -> np.ndarray:
    """(..., replicates, images) of 0/1; a single replicate may be given as a 1-D array."""
    matrix = np.asarray(correct, dtype=float)
    matrix = matrix[np.newaxis] if matrix.ndim == 1 else matrix
    if matrix.ndim < 2 or matrix.shape[-1] < 2:
        raise ValueError(f"need (replicates, images) right/wrong values, got shape {matrix.shape}")
    return matrix


@dataclass(frozen=True)
class MeanVariance:
    """A mean accuracy (or a difference of two) and its variance by source; arrays shaped
    like the input's leading (batch) axes, 0-d for one run."""

    mean: np.ndarray
    seeds: np.ndarray  # training part σa²/n (summed over unpaired runs); 0 for one seed
    images: np.ndarray  # images' part with the seed × image residual, σb²/N + σe²/(nN)
    df: np.ndarray  # degrees of freedom (Satterthwaite)

    @property
    def variance(self) -> np.ndarray:
        return self.seeds + self.images


@dataclass(frozen=True)
class _SeedPart:
    value: np.ndarray  # σa²/n, floored at 0
    for_df: np.ndarray  # the same with the seed mean square median-unbiased (see _seed_part)
    df_term: np.ndarray  # its Satterthwaite denominator, sum(term² / df)


def _seed_part(x: np.ndarray) -> _SeedPart:
    """σa²/n = (MS_seeds - MS_residual) / (nN), floored at 0; all 0 for one replicate.

    The degrees of freedom use MS_seeds · (n - 1) / median(χ²(n - 1)), its median-unbiased
    value: with 2 df at 3 seeds the plain estimate often comes in low by chance, and the
    plug-in Satterthwaite formula then also raises the degrees of freedom (a paired test of
    two identical runs at 3 seeds rejected 7.2 % instead of 5 %; 5.5 % this way:
    benchmarks/seed_statistics.py).
    """
    n, images = x.shape[-2:]
    if n < 2:
        zero = np.zeros(x.shape[:-2])
        return _SeedPart(zero, zero, zero)
    seed_means, image_means = x.mean(axis=-1), x.mean(axis=-2)
    grand = seed_means.mean(axis=-1)
    seeds = np.var(seed_means, axis=-1, ddof=1) / n  # MS_seeds / (nN)
    residual = x - seed_means[..., None] - image_means[..., None, :] + grand[..., None, None]
    residual_df = (n - 1) * (images - 1)
    residual = np.sum(residual**2, axis=(-2, -1)) / residual_df / (n * images)
    value = np.maximum(seeds - residual, 0.0)
    median_unbiased = seeds * (n - 1) / chi2.ppf(0.5, n - 1)
    positive = median_unbiased > residual
    for_df = np.where(positive, median_unbiased - residual, 0.0)
    term = median_unbiased**2 / (n - 1) + residual**2 / residual_df
    return _SeedPart(value, for_df, np.where(positive, term, 0.0))


def _add_images(seeds: _SeedPart, per_image: np.ndarray) -> MeanVariance:
    """Add the images' part (variance of the per-image means over the images / N, which holds
    σb²/N and the residual's σe²/(nN)) to a seed part."""
    images = per_image.shape[-1]
    image_part = np.var(per_image, axis=-1, ddof=1) / images
    denominator = seeds.df_term + image_part**2 / (images - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, (seeds.for_df + image_part) ** 2 / denominator, np.inf)
    return MeanVariance(per_image.mean(axis=-1), seeds.value, image_part, df)


def mean_variance(correct: np.ndarray) -> MeanVariance:
    """Mean accuracy of a run's (..., replicates, images) matrix and its variance by source."""
    x = replicate_matrix(correct)
    return _add_images(_seed_part(x), x.mean(axis=-2))


def difference_variance(a: np.ndarray, b: np.ndarray, *, paired: bool = False) -> MeanVariance:
    """Mean accuracy of A minus B on the same images, and its variance by source.

    `paired`: row k of both comes from the same training seed (`pair_by_seed`); the seed part
    is then that of the per-cell differences, so a seed effect both share cancels and the
    seed × change interaction is what counts. Unpaired, each run adds its own seed part.
    """
    a, b = replicate_matrix(a), replicate_matrix(b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"runs scored different numbers of images: {a.shape[-1]} vs {b.shape[-1]}")
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired runs need the same replicates: {a.shape} vs {b.shape}")
        return mean_variance(a - b)
    parts = [_seed_part(a), _seed_part(b)]
    seeds = _SeedPart(*(sum(getattr(p, f) for p in parts) for f in ("value", "for_df", "df_term")))
    return _add_images(seeds, a.mean(axis=-2) - b.mean(axis=-2))


def wilson(mean: np.ndarray, n: int, z: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion `mean` of n, vectorised."""
    denominator = 1 + z**2 / n
    centre = (mean + z**2 / (2 * n)) / denominator
    half = z * np.sqrt(mean * (1 - mean) / n + z**2 / (4 * n**2)) / denominator
    return np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)


def logit_score_interval(parts: MeanVariance, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Interval for a mean accuracy p: every p with |mean - p| <= t · SE_logit · p(1 - p).

    The standard error is held fixed on the logit scale (SE / (mean(1 - mean))) and mapped back
    at each candidate p, as Wilson's interval evaluates the variance at p rather than at the
    estimate: where seeds spread on the logit scale, accuracies near 1 spread less, and the
    mean of a few lucky seeds comes with a small SE. mean ± t · SE missed high ~10 % of the
    time there at 3 seeds; this interval ~3 % on each side (the test module).
    """
    mean = np.clip(np.asarray(parts.mean, dtype=float), 1e-12, 1 - 1e-12)
    quantile = t_distribution.ppf(0.5 + level / 2, parts.df)
    k = quantile * np.sqrt(parts.variance) / (mean * (1 - mean))
    # Roots of k p² - (1 + k) p + mean = 0 (below) and k p² + (1 - k) p - mean = 0 (above),
    # in the form that stays exact as k -> 0.
    low = 2 * mean / ((1 + k) + np.sqrt((1 + k) ** 2 - 4 * k * mean))
    high = 2 * mean / ((1 - k) + np.sqrt((1 - k) ** 2 + 4 * k * mean))
    return low, high


def run_interval(correct: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """(mean, low, high) of a run's mean accuracy: the logit score interval over seeds and
    images; Wilson over the images for one replicate, or where nothing varies (every seed
    right on the same images: no variance to measure)."""
    x = replicate_matrix(correct)
    parts = mean_variance(x)
    images = x.shape[-1]
    z = t_distribution.ppf(0.5 + level / 2, np.inf)
    wilson_low, wilson_high = wilson(parts.mean, images, z)
    if x.shape[-2] == 1:
        return parts.mean, wilson_low, wilson_high
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = logit_score_interval(parts, level)
    constant = parts.variance == 0
    return parts.mean, np.where(constant, wilson_low, low), np.where(constant, wilson_high, high)


def difference_interval(
    a: np.ndarray, b: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, ...]:
    """(difference, low, high) of mean accuracy A - B for runs not paired by seed.

    MOVER (Zou & Donner 2008; Newcombe's method for paired proportions): each run's own
    interval (`run_interval`, asymmetric where its seeds are skewed) gives the distance to
    each bound, combined with the correlation of the two means through the shared images.
    A plain t on the difference took a 3-seed run of lucky seeds as beating an equally good
    one-seed baseline 9.8 % of the time (2.5 % nominal); this 2.2 % (seeds as variable as the
    default config's: benchmarks/seed_statistics.py).
    """
    a, b = replicate_matrix(a), replicate_matrix(b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"runs scored different numbers of images: {a.shape[-1]} vs {b.shape[-1]}")
    mean_a, low_a, high_a = run_interval(a, level)
    mean_b, low_b, high_b = run_interval(b, level)
    variance_a, variance_b = mean_variance(a).variance, mean_variance(b).variance
    images_a, images_b = a.mean(axis=-2), b.mean(axis=-2)
    covariance = np.sum(
        (images_a - images_a.mean(axis=-1, keepdims=True))
        * (images_b - images_b.mean(axis=-1, keepdims=True)),
        axis=-1,
    ) / (a.shape[-1] * (a.shape[-1] - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(np.nan_to_num(covariance / np.sqrt(variance_a * variance_b)), -1, 1)
    difference = mean_a - mean_b
    below_a, above_a, below_b, above_b = (
        mean_a - low_a,
        high_a - mean_a,
        mean_b - low_b,
        high_b - mean_b,
    )
    low = difference - np.sqrt(np.maximum(below_a**2 + above_b**2 - 2 * r * below_a * above_b, 0.0))
    high = difference + np.sqrt(
        np.maximum(above_a**2 + below_b**2 - 2 * r * above_a * below_b, 0.0)
    )
    return difference, low, high
