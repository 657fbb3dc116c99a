"""Statistical tests of a validation curve against its known per-epoch standard error.

Model: the score of epoch t is y_t = f(t) + e_t, where f is the smooth learning trend and e_t
is independent noise of known standard error s_t (the sampling error of the images scored).
Two tests, each with a p-value:

- dispersion: f is fitted by weighted least squares as a + b·exp(-t/tau) + c·t (a saturating
  learning curve plus a slow drift; tau profiled over a grid), and the weighted residual sum
  of squares is compared with chi-squared on T - 4 degrees of freedom. It catches a curve that
  moves more than its noise everywhere (many moderate jumps).
- outliers (one-epoch glitches): epoch t is tested against both neighbours. A dip is how far
  y_t lies below both y_{t-1} and y_{t+1}; its tail probability is computed for a locally flat
  trend, which is the worst case for any locally linear trend and for a dip on a concave
  (rising, levelling) curve, so it needs no trend model. Bonferroni over the interior epochs.
- the paired glitch test (a fixed validation set with a per-image record): epoch t against
  each neighbour by an exact McNemar test on the same images; a glitch must lose (or win) to
  both (see `paired_glitch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import stats
from scipy.special import log_ndtr

# Trend parameters fitted (a, b, c and the profiled tau), so the dispersion test has T - 4
# degrees of freedom; below 8 epochs (4 degrees of freedom) the test leans more on the trend
# family being right than on the data, so it is not run.
TREND_PARAMETERS = 4
MIN_EPOCHS_FOR_DISPERSION = 8
# A one-epoch glitch needs an epoch with a neighbour on each side: 3 epochs at least.
MIN_EPOCHS_FOR_OUTLIERS = 3
# Time constants of the trend, in epochs, from a glitch-sized 0.3 to far beyond any run.
TAU_GRID = np.geomspace(0.3, 300.0, 48)
# Gauss-Hermite nodes for the neighbour-test integral (exact to ~1e-12 for dips up to 10 SE).
_NODES, _WEIGHTS = hermegauss(120)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class Dispersion:
    chi_squared: float
    degrees_of_freedom: int
    p_value: float | None  # None below MIN_EPOCHS_FOR_DISPERSION

    @property
    def ratio(self) -> float:
        """Observed / expected noise: sqrt(chi-squared per degree of freedom)."""
        return float(np.sqrt(self.chi_squared / self.degrees_of_freedom))


@dataclass(frozen=True)
class Glitch:
    """The most extreme single epoch of a curve and its multiplicity-corrected p-value."""

    epoch_index: int  # position in the curve (0-based)
    kind: str  # "dip" | "spike"
    size: float  # how far beyond both neighbours, in the metric's units
    p_value: float  # one epoch
    p_adjusted: float  # Bonferroni over the epochs tested
    tested: int
    method: str  # "paired" | "unpaired"
    right_then_wrong_then_right: int | None = None
    wrong_then_right_then_wrong: int | None = None


def _trend_basis(epochs: np.ndarray, tau: float) -> np.ndarray:
    return np.column_stack([np.ones(epochs.size), np.exp(-epochs / tau), epochs])


def trend_dispersion(values: np.ndarray, standard_errors: np.ndarray) -> Dispersion | None:
    """Weighted residual chi-squared around the best saturating-plus-drift trend."""
    values, errors = np.asarray(values, float), np.asarray(standard_errors, float)
    if values.size <= TREND_PARAMETERS or not (errors > 0).all():
        return None
    epochs = np.arange(1, values.size + 1, dtype=float)
    weights = 1 / errors
    best = np.inf
    for tau in TAU_GRID:
        design = _trend_basis(epochs, tau) * weights[:, None]
        coefficients, *_ = np.linalg.lstsq(design, values * weights, rcond=None)
        best = min(best, float(np.sum((design @ coefficients - values * weights) ** 2)))
    dof = values.size - TREND_PARAMETERS
    p_value = None
    if values.size >= MIN_EPOCHS_FOR_DISPERSION:
        p_value = float(stats.chi2.sf(best, dof))
    return Dispersion(chi_squared=best, degrees_of_freedom=dof, p_value=p_value)


def beyond_both_neighbours_p(excess: float, own: float, left: float, right: float) -> float:
    """P(an epoch lies `excess` beyond both neighbours in one given direction) under pure noise.

    With y_t = e_t and neighbours e_{t-1}, e_{t+1} (independent, standard errors own, left,
    right): P(min(e_{t-1}, e_{t+1}) - e_t > excess) = E_b[Q((own b + excess)/left)
    Q((own b + excess)/right)], b standard normal, Q the normal upper tail.
    """
    if excess <= 0:
        return 1.0
    shifted = own * _NODES + excess
    log_terms = log_ndtr(-shifted / left) + log_ndtr(-shifted / right)
    return float(min(1.0, np.sum(_WEIGHTS * np.exp(log_terms))))


def neighbour_glitch(values: np.ndarray, standard_errors: np.ndarray) -> Glitch | None:
    """The epoch furthest beyond both neighbours, against the sampling noise alone."""
    values, errors = np.asarray(values, float), np.asarray(standard_errors, float)
    if values.size < MIN_EPOCHS_FOR_OUTLIERS:
        return None
    tested = values.size - 2
    best: Glitch | None = None
    for t in range(1, values.size - 1):
        left, right = values[t - 1], values[t + 1]
        dip, spike = min(left, right) - values[t], values[t] - max(left, right)
        kind, excess = ("dip", dip) if dip > 0 else ("spike", spike)
        # Two-sided: a dip or a spike would both have been reported.
        p_value = min(1.0, 2 * beyond_both_neighbours_p(excess, *errors[t - 1 : t + 2][[1, 0, 2]]))
        if best is None or p_value < best.p_value:
            adjusted = min(1.0, p_value * tested)
            best = Glitch(t, kind, max(excess, 0.0), p_value, adjusted, tested, "unpaired")
    return best


def _mcnemar_worse(worse: np.ndarray, better: np.ndarray) -> np.ndarray:
    """One-sided exact McNemar p-values that the later epoch is worse (per pair of counts)."""
    return np.array(
        [
            stats.binomtest(int(w), int(w + b), 0.5, alternative="greater").pvalue if w + b else 1.0
            for w, b in zip(worse, better)
        ]
    )


def paired_glitch(correct: np.ndarray) -> Glitch | None:
    """Paired one-epoch glitch test on a fixed set: correct is (epochs, images) of 1/0.

    A dip at t means epoch t is worse than t-1 AND worse than t+1: two exact one-sided McNemar
    tests on the same images, and the larger p-value is the dip's (an intersection-union test,
    valid whatever the trend, because the model at t must lose to both neighbours). A spike is
    the mirror image. Reported with the counts of images right at t-1 and t+1 but wrong at t,
    and the reverse. (Those two counts are not tested against each other: near the decision
    boundary images flicker both ways at rates set by the accuracy, so their expected ratio is
    not 1/2, and such a test raised alarms on over half of clean synthetic runs.)
    """
    correct = np.asarray(correct, dtype=np.int8)
    if correct.shape[0] < MIN_EPOCHS_FOR_OUTLIERS:
        return None
    earlier, later = correct[:-1], correct[1:]
    lost = ((earlier == 1) & (later == 0)).sum(axis=1)  # right -> wrong, per consecutive pair
    gained = ((earlier == 0) & (later == 1)).sum(axis=1)
    worse_than_previous = _mcnemar_worse(lost, gained)  # pair k: epoch k+1 worse than k
    better_than_previous = _mcnemar_worse(gained, lost)
    tested = correct.shape[0] - 2
    before, now, after = correct[:-2], correct[1:-1], correct[2:]
    dips = ((before == 1) & (now == 0) & (after == 1)).sum(axis=1)
    spikes = ((before == 0) & (now == 1) & (after == 0)).sum(axis=1)
    best: Glitch | None = None
    for t in range(1, correct.shape[0] - 1):
        # Dip: t worse than t-1 (pair t-1), and t+1 better than t (pair t).
        dip = max(worse_than_previous[t - 1], better_than_previous[t])
        spike = max(better_than_previous[t - 1], worse_than_previous[t])
        kind, p_one = ("dip", dip) if dip <= spike else ("spike", spike)
        p_value = min(1.0, 2 * p_one)  # either direction would have been reported
        if best is None or p_value < best.p_value:
            size = abs(int(dips[t - 1]) - int(spikes[t - 1])) / correct.shape[1]
            best = Glitch(
                t,
                kind,
                size,
                p_value,
                min(1.0, p_value * tested),
                tested,
                "paired",
                int(dips[t - 1]),
                int(spikes[t - 1]),
            )
    return best


@dataclass(frozen=True)
class Churn:
    """Images whose correctness flipped between consecutive epochs (scored in both)."""

    fractions: np.ndarray  # per consecutive pair
    right_to_wrong: np.ndarray
    wrong_to_right: np.ndarray

    @property
    def largest(self) -> int:
        return int(np.argmax(self.fractions))

    def mcnemar_p(self, pair: int) -> float:
        """Exact McNemar test of one consecutive pair: binomial on the discordant images."""
        worse, better = int(self.right_to_wrong[pair]), int(self.wrong_to_right[pair])
        if worse + better == 0:
            return 1.0
        return float(stats.binomtest(worse, worse + better, 0.5).pvalue)


def churn(correct: np.ndarray) -> Churn | None:
    """Churn between consecutive epochs from (epochs, images) of 1/0/-1 (-1: not scored)."""
    correct = np.asarray(correct, dtype=np.int8)
    if correct.shape[0] < 2:
        return None
    previous, current = correct[:-1], correct[1:]
    both = (previous >= 0) & (current >= 0)
    worse = (both & (previous == 1) & (current == 0)).sum(axis=1)
    better = (both & (previous == 0) & (current == 1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.where(both.sum(axis=1) > 0, (worse + better) / both.sum(axis=1), 0.0)
    return Churn(fractions=fractions, right_to_wrong=worse, wrong_to_right=better)
