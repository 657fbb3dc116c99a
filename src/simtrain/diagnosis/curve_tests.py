"""Statistical tests of a validation curve against sampling noise and ordinary training movement.

Model: the score of epoch t is y_t = f(t) + e_t. f is the learning trend: any shape that
changes slowly or monotonically from epoch to epoch (a saturating rise, a plateau then a rise,
the steps of a learning-rate schedule, slow dips and oscillations). The e_t are independent
with variance s_t² + σ_m²: s_t is the validation sampling error (a different random subset
each epoch; 0 for a fixed set) and σ_m the model's ordinary movement (SGD changes the model
between epochs, so even a fixed set's accuracy moves around the trend).

- Detrending, twice: the curve minus its least-squares fit a + b·exp(−t/τ) + c·t (τ profiled
  over a grid), which takes out a learning curve's steep start; then second differences
  d_t = r_t − (r_{t−1} + r_{t+1})/2 of those residuals, which take out whatever slower shape
  the fit missed. For independent e_t, Var(d_t) ≈ 1.5 σ².
- Movement (`movement_scale`): a trimmed RMS of the d_t (the largest quarter dropped) without
  the three that involve the epoch furthest beyond both neighbours, so a glitch is not counted
  as movement and a shape the fit missed mostly is not either. Seed replicates' curves join
  the pool when given.
- Glitch (`glitch_test`): the largest excess of one epoch of the raw curve beyond both
  neighbours (a dip below both, or a spike above both; a monotone trend of any shape, such as
  a learning-rate step, makes none), over the movement estimated without that epoch.
- Movement test (`movement_test`): is the movement larger than an allowed level?
- What the curve shows (`observed_movement`): the plain RMS of all d_t, glitches included.

Every scale is calibrated to be the per-epoch SD for pure noise of the curve's length, so
observed / expected is ≈ 1 for a curve that moves only as ordinary noise does. Both tests
studentise by a scale from the same curve, which makes them pivotal under independent normal
e_t: their p-values come from a fixed-seed Monte-Carlo null of the same procedure on pure
noise of the same length (picking the most extreme epoch is part of the procedure, so the
family-wise error over epochs is controlled without Bonferroni).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import stats

# A one-epoch glitch needs an epoch with a neighbour on each side: 3 epochs at least.
MIN_EPOCHS_FOR_OUTLIERS = 3
# Movement is estimated from at least this many second differences; below it the curve's
# own movement is unknown (the Monte-Carlo null accounts for how little three say).
MIN_SECOND_DIFFERENCES = 3
# The movement test needs 8 epochs (6 second differences).
MIN_EPOCHS_FOR_MOVEMENT = 8
# The exponential trend takes 4 degrees of freedom, too many for a short curve: below 15 epochs
# a straight line is fitted (which second differences remove anyway).
MIN_EPOCHS_FOR_EXPONENTIAL = 6
# Time constants of the trend, in epochs, from 0.3 to far beyond any run.
TAU_GRID = np.geomspace(0.3, 300.0, 48)
# The trimmed scale keeps the smallest 75 % of the squared second differences.
TRIMMED_SHARE = 0.8
NULL_DRAWS = 10_000
NULL_SEED = 20_261_129


def _design(epochs: int, tau: float | None) -> np.ndarray:
    t = np.arange(1, epochs + 1, dtype=float)
    columns = [np.ones(epochs), t] + ([] if tau is None else [np.exp(-t / tau)])
    return np.column_stack(columns)


@cache
def _projections(epochs: int) -> tuple[np.ndarray, ...]:
    """The residual-maker matrices I − X(XᵀX)⁻¹Xᵀ of each trend in the family."""
    taus = TAU_GRID if epochs >= MIN_EPOCHS_FOR_EXPONENTIAL else (None,)
    designs = [_design(epochs, tau) for tau in taus]
    return tuple(np.eye(epochs) - x @ np.linalg.pinv(x) for x in designs)


def detrend(values: np.ndarray) -> np.ndarray:
    """Residuals from the best trend of the family, for one curve or a stack (last axis)."""
    values = np.asarray(values, float)
    best, best_rss = None, None
    for projection in _projections(values.shape[-1]):
        residuals = values @ projection.T
        rss = np.sum(residuals**2, axis=-1)
        if best is None:
            best, best_rss = residuals, rss
        else:
            better = rss < best_rss
            best = np.where(better[..., None], residuals, best)
            best_rss = np.minimum(rss, best_rss)
    return best


def second_differences(values: np.ndarray) -> np.ndarray:
    """Second differences along the last axis (one curve or a stack of them)."""
    values = np.asarray(values, float)
    return values[..., 1:-1] - (values[..., :-2] + values[..., 2:]) / 2


def _excess(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per interior epoch: how far beyond both neighbours (>= 0), and +1 spike / -1 dip."""
    before, now, after = values[..., :-2], values[..., 1:-1], values[..., 2:]
    dip = np.minimum(before, after) - now
    spike = now - np.maximum(before, after)
    return np.maximum(np.maximum(dip, spike), 0.0), np.where(spike > dip, 1, -1)


def _trimmed_rms(samples: np.ndarray) -> np.ndarray:
    """Per row: RMS of the smallest TRIMMED_SHARE of the squared values (NaN ignored; NaN if
    fewer than MIN_SECOND_DIFFERENCES)."""
    samples = np.atleast_2d(samples)
    squares = np.sort(np.where(np.isnan(samples), np.inf, samples**2), axis=-1)
    valid = np.sum(~np.isnan(samples), axis=-1)
    kept = np.maximum(np.ceil(TRIMMED_SHARE * valid).astype(int), 1)
    totals = np.cumsum(np.where(np.isinf(squares), 0.0, squares), axis=-1)
    mean_square = totals[np.arange(samples.shape[0]), kept - 1] / kept
    return np.where(valid >= MIN_SECOND_DIFFERENCES, np.sqrt(mean_square), np.nan)


def _raw_scale(differences: np.ndarray, tested: np.ndarray, pooled: np.ndarray | None):
    """Trimmed RMS per row of `differences`, without the three involving the tested interior
    epoch (0-based among the interior epochs), with the replicates' `pooled` ones added."""
    columns = np.arange(differences.shape[-1])
    # Interior epoch k + 1 is involved in d[k - 1], d[k] and d[k + 1].
    involved = np.abs(columns[None, :] - tested[:, None]) <= 1
    sample = np.where(involved, np.nan, differences)
    if pooled is not None:
        sample = np.concatenate([sample, pooled], axis=-1)
    return _trimmed_rms(sample)


@cache
def _null_curves(epochs: int, key: tuple = ()) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence(NULL_SEED, spawn_key=(epochs, *key)))
    return rng.standard_normal((NULL_DRAWS, epochs))


def _tested(values: np.ndarray) -> np.ndarray:
    """Per curve (rows): the interior epoch (0-based among them) furthest beyond both
    neighbours."""
    return np.argmax(_excess(np.atleast_2d(values))[0], axis=-1)


def _residual_differences(values: np.ndarray, tested: np.ndarray) -> np.ndarray:
    """Second differences of each curve minus its trend, the trend fitted with the tested
    epoch replaced by its neighbours' mean (so a glitch does not bend it)."""
    values = np.atleast_2d(np.asarray(values, float))
    rows, epoch = np.arange(values.shape[0]), tested + 1
    filled = values.copy()
    filled[rows, epoch] = (values[rows, epoch - 1] + values[rows, epoch + 1]) / 2
    return second_differences(values - (filled - detrend(filled)))


@cache
def _null_statistics(epochs: int) -> tuple[np.ndarray, ...]:
    """For pure unit noise of this length, per draw: the largest excess, the raw leave-out
    scale, the raw RMS of the second differences and their raw trimmed RMS."""
    noise = _null_curves(epochs)
    excess, _ = _excess(noise)
    tested = np.argmax(excess, axis=1)
    differences = _residual_differences(noise, tested)
    return (
        excess[np.arange(NULL_DRAWS), tested],
        _raw_scale(differences, tested, None),
        np.sqrt(np.mean(differences**2, axis=1)),
        _trimmed_rms(differences),
    )


@cache
def _calibration(epochs: int) -> tuple[float, float, float]:
    """Constants that make the leave-out scale, the observed RMS and the whole-curve trimmed
    scale per-epoch SDs for pure unit noise."""
    _, scale, observed, whole = _null_statistics(epochs)
    with np.errstate(all="ignore"):  # too short a curve: NaN, and no scale is reported
        return tuple(
            float(np.sqrt(np.nanmean(v**2))) if np.isfinite(v).any() else math.nan
            for v in (scale, observed, whole)
        )


def movement_scale(values: np.ndarray) -> float | None:
    """Per-epoch SD of a curve around its trend without the epoch furthest beyond both
    neighbours (a glitch is not movement); None if the curve is too short."""
    values = np.asarray(values, float)
    if values.size < MIN_EPOCHS_FOR_OUTLIERS:
        return None
    tested = _tested(values)
    raw = float(_raw_scale(_residual_differences(values, tested), tested, None)[0])
    return None if math.isnan(raw) else raw / _calibration(values.size)[0]


def observed_movement(values: np.ndarray) -> float | None:
    """The per-epoch SD the curve shows around its trend, glitches included."""
    values = np.asarray(values, float)
    if values.size < MIN_EPOCHS_FOR_OUTLIERS:
        return None
    differences = _residual_differences(values, _tested(values))
    return float(np.sqrt(np.mean(differences**2))) / _calibration(values.size)[1]


@dataclass(frozen=True)
class Glitch:
    """The epoch furthest beyond both neighbours, against the noise of the curve."""

    epoch_index: int  # position in the curve (0-based)
    kind: str  # "dip" | "spike"
    size: float  # how far beyond both neighbours, in the metric's units
    scale: float  # per-epoch SD it is measured against
    p_value: float  # family-wise over the epochs tested
    tested: int
    method: str  # "own movement" | "own and replicates' movement" | "known scale"


@cache
def _null_maxima(epochs: int, replicate_lengths: tuple[int, ...], studentised: bool) -> np.ndarray:
    """Sorted null draws of `glitch_test`'s statistic on pure-noise curves of these lengths."""
    largest, scale, *_ = _null_statistics(epochs)
    if not studentised:
        return np.sort(largest)
    if replicate_lengths:
        own = _null_curves(epochs)
        tested = np.argmax(_excess(own)[0], axis=1)
        parts = [_null_curves(n, (i + 1,)) for i, n in enumerate(replicate_lengths)]
        pooled = np.concatenate([_replicate_differences(p) for p in parts], axis=1)
        scale = _raw_scale(_residual_differences(own, tested), tested, pooled)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sort(largest / scale)


def _replicate_differences(curves: np.ndarray) -> np.ndarray:
    """A replicate's residual second differences (its own most extreme epoch left out)."""
    curves = np.atleast_2d(np.asarray(curves, float))
    tested = _tested(curves)
    differences = _residual_differences(curves, tested)
    columns = np.arange(differences.shape[-1])
    return np.where(np.abs(columns[None, :] - tested[:, None]) <= 1, np.nan, differences)


def _upper_tail(sorted_null: np.ndarray, value: float) -> float:
    """P(null >= value), with the +1 correction that keeps a Monte-Carlo p-value valid."""
    above = sorted_null.size - np.searchsorted(sorted_null, value, side="left")
    return float((above + 1) / (sorted_null.size + 1))


def glitch_test(
    values: np.ndarray,
    sampling_se: float = 0.0,
    *,
    replicates: tuple[np.ndarray, ...] = (),
    known_scale: float | None = None,
) -> Glitch | None:
    """The largest one-epoch excess beyond both neighbours and its p-value.

    Against the curve's own movement without that epoch (pooled with the replicates' curves,
    when given), never below `sampling_se` (the known sampling error); None when too few
    second differences remain. With `known_scale` (a per-epoch SD taken as known, e.g. the
    largest ordinary movement) against that instead.
    """
    values = np.asarray(values, float)
    if values.size < MIN_EPOCHS_FOR_OUTLIERS:
        return None
    excess, direction = _excess(values)
    t = int(np.argmax(excess))
    lengths: tuple[int, ...] = ()
    if known_scale is not None:
        scale, method = float(known_scale), "known scale"
    else:
        curves = [np.asarray(r, float) for r in replicates if len(r) >= 3]
        lengths = tuple(c.size for c in curves)
        pooled = (
            np.concatenate([_replicate_differences(c) for c in curves], axis=1) if curves else None
        )
        raw = float(
            _raw_scale(_residual_differences(values, np.array([t])), np.array([t]), pooled)[0]
        )
        if math.isnan(raw):
            return None
        # The null below is of the raw statistic; the calibrated scale is what is reported.
        scale = max(raw / _calibration(values.size)[0], sampling_se)
        raw = max(raw, sampling_se * _calibration(values.size)[0])
        method = "own and replicates' movement" if curves else "own movement"
    null = _null_maxima(values.size, lengths, known_scale is None)
    denominator = scale if known_scale is not None else raw
    statistic = excess[t] / denominator if denominator > 0 else (math.inf if excess[t] else 0.0)
    return Glitch(
        epoch_index=t + 1,
        kind="spike" if direction[t] > 0 else "dip",
        size=float(excess[t]),
        scale=scale,
        p_value=_upper_tail(null, float(statistic)),
        tested=int(excess.size),
        method=method,
    )


@dataclass(frozen=True)
class Movement:
    """The curve's movement against an allowed level (sampling + ordinary movement)."""

    scale: float  # per-epoch SD around the trend (trimmed, every epoch)
    allowed: float  # the SD the test allows
    p_value: float | None  # H0: movement <= allowed; None below MIN_EPOCHS_FOR_MOVEMENT
    epochs: int


@cache
def _null_scales(epochs: int) -> np.ndarray:
    """Sorted null draws of the whole-curve movement on pure noise of SD 1."""
    return np.sort(_null_statistics(epochs)[3] / _calibration(epochs)[2])


def movement_test(values: np.ndarray, allowed: float) -> Movement | None:
    """Does the curve move more than `allowed` per epoch around its trend? Measured on every
    second difference (a trimmed RMS): movement throughout, not one glitch."""
    values = np.asarray(values, float)
    if values.size < MIN_EPOCHS_FOR_OUTLIERS:
        return None
    differences = _residual_differences(values, _tested(values))
    raw = float(_trimmed_rms(differences)[0])
    if math.isnan(raw):
        return None
    scale = raw / _calibration(values.size)[2]
    p_value = None
    if values.size >= MIN_EPOCHS_FOR_MOVEMENT and allowed > 0:
        p_value = _upper_tail(_null_scales(values.size), scale / allowed)
    return Movement(scale=scale, allowed=allowed, p_value=p_value, epochs=int(values.size))


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
