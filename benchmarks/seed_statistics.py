"""Coverage and error rates of the seed statistics on simulated runs whose truth is known.

Command:

    uv run python benchmarks/seed_statistics.py [--experiments 4000] [--bootstrap]

The runs come from the generative model of tests/reporting/test_statistics.py (image
difficulty, seed effect and seed x image interaction on the logit scale; three regimes: the
seeds dominate as in the default config, the images dominate, balanced). Printed:

1. coverage of 95 % intervals of one run's mean accuracy at 3, 5 and 10 seeds: the share of
   intervals wholly below the truth (miss low), wholly above (miss high), and covering it, with
   Monte-Carlo standard errors, for each candidate method (`--bootstrap` adds the two-way
   pigeonhole bootstrap, on min(experiments, 1000) experiments: it is slow);
2. false-positive rates of comparisons between two runs of the same training procedure:
   paired by seed, on other seeds, a 3-seed run against a fixed one-seed baseline, and one
   seed each (exact McNemar), with Wilson intervals;
3. power on a real difference and the non-inferiority test's size at its margin and power.

Targets (tests/reporting/test_statistics.py asserts them): coverage 93-97 % with each tail
about 2.5 %; two identical runs differ significantly about 5 % of the time. One JSON line is
appended to --results.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from common import REPO_ROOT, add_results_argument, append_result, format_table, positive_int
from scipy.stats import binom
from scipy.stats import t as t_distribution

sys.path.insert(0, str(REPO_ROOT))
from simtrain.reporting.statistics import wilson_interval  # noqa: E402
from simtrain.reporting.variance_components import (  # noqa: E402
    MeanVariance,
    difference_interval,
    difference_variance,
    logit_score_interval,
    run_interval,
)
from tests.reporting import test_statistics as model  # noqa: E402

SEEDS = (3, 5, 10)


def _mean_squares(x: np.ndarray):
    """Grand mean and MS_seeds, MS_images, MS_residual, each / (nN)."""
    n, images = x.shape[-2:]
    seed_means, image_means = x.mean(-1), x.mean(-2)
    grand = seed_means.mean(-1)
    residual = x - seed_means[..., None] - image_means[..., None, :] + grand[..., None, None]
    residual = (residual**2).sum((-2, -1)) / ((n - 1) * (images - 1)) / (n * images)
    seeds = np.var(seed_means, -1, ddof=1) / n
    return grand, seeds, np.var(image_means, -1, ddof=1) / images, residual


def old_interval(x: np.ndarray):
    """Before: var(seed means)/n + var(image means)/N (the residual twice), t on n - 1 df."""
    grand, seeds, images, _ = _mean_squares(x)
    half = t_distribution.ppf(0.975, x.shape[-2] - 1) * np.sqrt(seeds + images)
    return grand - half, grand + half


def plug_in_parts(x: np.ndarray) -> MeanVariance:
    """The variance components with the plain plug-in Satterthwaite degrees of freedom."""
    n, images = x.shape[-2:]
    grand, seeds, image_part, residual = _mean_squares(x)
    positive = seeds > residual
    seed_part = np.where(positive, seeds - residual, 0.0)
    term = np.where(positive, seeds**2 / (n - 1) + residual**2 / ((n - 1) * (images - 1)), 0.0)
    df = (seed_part + image_part) ** 2 / (term + image_part**2 / (images - 1))
    return MeanVariance(grand, seed_part, image_part, df)


def symmetric(parts: MeanVariance, df=None):
    half = t_distribution.ppf(0.975, parts.df if df is None else df) * np.sqrt(parts.variance)
    return parts.mean - half, parts.mean + half


def pigeonhole(x: np.ndarray, rng, replicates: int = 400):
    """Two-way bootstrap: seeds and images resampled independently; percentile interval."""
    n, images = x.shape[-2:]
    lows, highs = np.empty(len(x)), np.empty(len(x))
    for k, matrix in enumerate(x):
        seed_weights = rng.multinomial(n, np.full(n, 1 / n), replicates)
        image_weights = rng.multinomial(images, np.full(images, 1 / images), replicates)
        means = np.einsum("bs,si,bi->b", seed_weights, matrix, image_weights) / (n * images)
        lows[k], highs[k] = np.quantile(means, [0.025, 0.975])
    return lows, highs


CANDIDATES = {
    "before: residual twice, t(n-1)": old_interval,
    "components, mean ± t·SE, plug-in df": lambda x: symmetric(plug_in_parts(x)),
    "components, mean ± t·SE, n-1 df": lambda x: symmetric(plug_in_parts(x), x.shape[-2] - 1),
    "components, logit score, plug-in df": lambda x: logit_score_interval(plug_in_parts(x)),
    "chosen: logit score, median-unbiased df": lambda x: run_interval(x)[1:],
}


def percent(rate: float, experiments: int) -> str:
    return f"{rate:.2%} ± {np.sqrt(rate * (1 - rate) / experiments):.2%}"


def rate_with_interval(hits: np.ndarray) -> str:
    low, high = wilson_interval(int(np.sum(hits)), hits.size)
    return f"{np.mean(hits):.1%} [{low:.1%}, {high:.1%}]"


def coverage_rows(experiments: int, bootstrap: bool) -> tuple[list, list]:
    rows, records = [], []
    for name, regime in model.REGIMES.items():
        for seeds in SEEDS:
            rng = np.random.default_rng(seeds)
            x = model.experiments(regime, seeds, rng)
            methods = dict(CANDIDATES)
            if bootstrap:
                methods["two-way bootstrap, percentile"] = lambda x: pigeonhole(
                    x[:1000], np.random.default_rng(0)
                )
            for method, interval in methods.items():
                low, high = interval(x)
                low_miss, high_miss = model.misses(low, high, regime.truth)
                n = len(low)
                cover = 1 - low_miss - high_miss
                rows.append([name, seeds, method, percent(low_miss, n), percent(high_miss, n)])
                rows[-1].append(percent(cover, n))
                records.append(dict(regime=name, seeds=seeds, method=method, experiments=n))
                records[-1].update(miss_low=low_miss, miss_high=high_miss, coverage=cover)
    return rows, records


def plain_t_low(after, before, paired: bool, level: float = 0.95) -> np.ndarray:
    parts = difference_variance(after, before, paired=paired)
    return parts.mean - t_distribution.ppf(0.5 + level / 2, parts.df) * np.sqrt(parts.variance)


def error_rows() -> list:
    rows = []
    for name, regime in model.REGIMES.items():
        rng = np.random.default_rng(1)
        for label, correlation in (("paired by seed", 0.5), ("other seeds", None)):
            a, b = model.identical_runs(regime, 3, rng, correlation)
            paired = correlation is not None
            if paired:
                low = plain_t_low(a, b, True)
                high = 2 * difference_variance(a, b, paired=True).mean - low
            else:
                _, low, high = difference_interval(a, b)
            rows.append([name, f"two identical runs, 3 seeds, {label}"])
            rows[-1] += [rate_with_interval((low > 0) | (high < 0)), rate_with_interval(low > 0)]
            if paired:  # the same test on the plain plug-in Satterthwaite df
                low, high = symmetric(plug_in_parts(a.astype(float) - b))
                rows.append([name, f"two identical runs, 3 seeds, {label}, plug-in df"])
                rows[-1] += [rate_with_interval((low > 0) | (high < 0))]
                rows[-1] += [rate_with_interval(low > 0)]
        images = regime.images(rng)
        run = regime.correct(rng, images, regime.seeds(rng, 3))
        baseline = model.Regime(0.0, regime.image_sd, 0.0).at(regime.truth)
        reference = baseline.correct(rng, images, baseline.seeds(rng, 1))
        _, low, high = difference_interval(run, reference)
        rows.append([name, "3 seeds vs fixed 1-seed baseline, MOVER"])
        rows[-1] += [rate_with_interval((low > 0) | (high < 0)), rate_with_interval(low > 0)]
        plain = plain_t_low(run, reference, False)
        rows.append([name, "3 seeds vs fixed 1-seed baseline, plain t", "", ""])
        rows[-1][-1] = rate_with_interval(plain > 0)
        a, b = model.identical_runs(regime, 1, rng, None)
        only_a, only_b = np.sum(a & ~b, axis=(1, 2)), np.sum(~a & b, axis=(1, 2))
        p = np.minimum(1.0, 2 * binom.cdf(np.minimum(only_a, only_b), only_a + only_b, 0.5))
        rows.append([name, "one seed each, exact McNemar", rate_with_interval(p < 0.05)])
        rows[-1].append(rate_with_interval((p < 0.05) & (only_a > only_b)))
    return rows


def power_rows() -> list:
    rows = []
    for name, regime in model.REGIMES.items():
        for paired in (True, False):
            how = "paired" if paired else "unpaired"
            for change in (0.05, 0.1, 0.15):
                if regime.truth + change > 0.99:
                    continue
                after, before = model.change_experiments(regime, change, paired, seed=2)
                found = model.lower_bounds(after, before, paired, 0.95) > 0
                text = f"+{change} accuracy, 3 seeds, {how}"
                rows.append([name, text, rate_with_interval(found)])
            for margin in (0.05, 0.1):
                for change, label in ((-margin, "size at"), (0.0, "power, no change,")):
                    after, before = model.change_experiments(regime, change, paired, seed=3)
                    shown = model.lower_bounds(after, before, paired, 0.90) > -margin
                    text = f"non-inferiority {label} margin {margin}, {how}"
                    rows.append([name, text, rate_with_interval(shown)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=positive_int, default=model.EXPERIMENTS)
    parser.add_argument("--bootstrap", action="store_true", help="add the two-way bootstrap")
    add_results_argument(parser)
    arguments = parser.parse_args()
    model.EXPERIMENTS = arguments.experiments
    coverage, records = coverage_rows(arguments.experiments, arguments.bootstrap)
    headers = ["regime", "seeds", "method", "miss low", "miss high", "coverage"]
    print(format_table(headers, coverage), end="\n\n")
    errors = error_rows()
    headers = ["regime", "comparison (no true difference)", "significant", "'beats'"]
    print(format_table(headers, errors), end="\n\n")
    power = power_rows()
    print(format_table(["regime", "test", "rate"], power))
    append_result(
        arguments.results,
        benchmark="seed_statistics",
        parameters={"experiments": arguments.experiments, "bootstrap": arguments.bootstrap},
        results={"coverage": records, "errors": errors, "power": power},
    )


if __name__ == "__main__":
    main()
