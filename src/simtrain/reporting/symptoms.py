"""The symptom each finding names, measured on a run and on its fix-verification sibling, with a
one-sided test that the sibling is better (`verification` turns them into verdicts).

- accuracy (PARTIAL_EPOCH, UNDER_TRAINED): the decision measure (precise-BN accuracy) rises,
  paired image by image and seed by seed (`comparison.compare_groups`).
- BatchNorm gap (BATCHNORM_STATISTICS: precise minus stored statistics; AUGMENTATION_SHIFT:
  un-augmented minus augmented statistics): the gap the finding measured shrinks; each
  replicate's gap carries its standard error (images and the recomputation's bootstrap).
- movement (PARTIAL_VALIDATION, UNEXPLAINED_FLUCTUATION, UNSTABLE_OPTIMIZATION: erratic steps
  matter through the jumps they make in the validation curve): the validation curve's variance
  around its trend (diagnostics' decomposition) falls: an F test, the tested epochs minus two
  per replicate as degrees of freedom (second differences are correlated: approximate).
- spikes (available, not a finding's symptom: too few spikes for power): the rate of batch-loss
  spikes falls: given both runs' spikes, the sibling's share is binomial in its batch share.
- held-out accuracy (OVERFITTING): the sibling stops early on val_loss, which picks its epoch on
  the validation images; so each half of them picks the epoch (lowest loss on that half) at
  which the other half is scored (two-fold cross-fitting on the sibling's validation record),
  against the run's last epoch on the same images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import binomtest, norm
from scipy.stats import f as f_distribution

from simtrain.diagnosis.optimization import spike_rate
from simtrain.diagnosis.validation_record import load_validation_record
from simtrain.reporting.comparison import compare_groups, correct_matrix
from simtrain.reporting.run_results import RunResult

SYMPTOMS = {
    "PARTIAL_EPOCH": "accuracy",
    "UNDER_TRAINED": "accuracy",
    "BATCHNORM_STATISTICS": "lag",
    "AUGMENTATION_SHIFT": "shift",
    "PARTIAL_VALIDATION": "movement",
    "UNEXPLAINED_FLUCTUATION": "movement",
    "UNSTABLE_OPTIMIZATION": "movement",
    "OVERFITTING": "held-out accuracy",
}


@dataclass(frozen=True)
class SymptomTest:
    """The symptom before and after the fix, and p of "after is better" (one-sided)."""

    symptom: str
    before: float
    after: float
    p_value: float
    test: str


def _one_sided(difference: float, two_sided: float) -> float:
    """One-sided p that a difference is positive, from a symmetric two-sided test."""
    if math.isnan(two_sided):
        return math.nan
    return two_sided / 2 if difference > 0 else 1 - two_sided / 2


def _improvement_test(
    name: str,
    before: Sequence[RunResult],
    after: Sequence[RunResult],
    correct_b: np.ndarray,
    correct_a: np.ndarray,
) -> SymptomTest:
    """One-sided test that `after` gets more images right than `before` (seed-aware)."""
    test = compare_groups(after, before, correct_a, correct_b)
    return SymptomTest(
        name,
        float(correct_b.mean()),
        float(correct_a.mean()),
        _one_sided(test.difference, test.p_value),
        test.test,
    )


def accuracy_test(before: Sequence[RunResult], after: Sequence[RunResult]) -> SymptomTest:
    return _improvement_test(
        "accuracy (precise BN)", before, after, correct_matrix(before), correct_matrix(after)
    )


def _evidence(result: RunResult, key: str) -> float:
    for finding in (result.diagnostics or {}).get("findings", []):
        value = (finding.get("evidence") or {}).get(key)
        if finding["code"] == "BATCHNORM_STATISTICS" and value is not None:
            return float(value)
    return math.nan


def gap_test(before: Sequence[RunResult], after: Sequence[RunResult], gap: str) -> SymptomTest:
    """`gap` "lag" or "shift": does the sibling's BatchNorm gap shrink?"""
    name = {"lag": "precise minus stored BN accuracy", "shift": "augmentation shift"}[gap]
    gaps = {
        side: np.array([_evidence(r, f"{gap}_gap") for r in group])
        for side, group in (("before", before), ("after", after))
    }
    errors = {
        side: np.array([_evidence(r, f"{gap}_se") for r in group])
        for side, group in (("before", before), ("after", after))
    }
    if any(np.isnan(v).any() for v in (*gaps.values(), *errors.values())):
        return SymptomTest(name, math.nan, math.nan, math.nan, "no BatchNorm evidence")
    difference = float(gaps["before"].mean() - gaps["after"].mean())
    # Each mean's variance: its replicates' own errors, or their spread when that is larger.
    variance = sum(
        max(
            np.sum(errors[s] ** 2) / len(errors[s]) ** 2,
            np.var(gaps[s], ddof=1) / len(gaps[s]) if len(gaps[s]) > 1 else 0.0,
        )
        for s in gaps
    )
    p_value = (
        float(norm.sf(difference / math.sqrt(variance)))
        if variance > 0
        else (0.0 if difference > 0 else 1.0)
    )
    return SymptomTest(
        name,
        float(gaps["before"].mean()),
        float(gaps["after"].mean()),
        p_value,
        "z test on the replicates' gaps (images and recomputation)",
    )


def _movement(group: Sequence[RunResult]) -> tuple[float, int]:
    """Mean per-epoch variance of the curves around their trends, and its degrees of freedom."""
    values, df = [], 0
    for result in group:
        fluctuation = (result.diagnostics or {}).get("fluctuation") or {}
        total = (fluctuation.get("variance_per_epoch") or {}).get("total")
        noise = next(
            (
                f
                for f in (result.diagnostics or {}).get("findings", [])
                if f["code"] == "VALIDATION_SAMPLING_NOISE"
            ),
            None,
        )
        if total is None or noise is None:
            continue
        values.append(float(total))
        df += max(int(noise["evidence"].get("epochs") or 0) - 2, 1)
    return (float(np.mean(values)) if values else math.nan), df


def movement_test(before: Sequence[RunResult], after: Sequence[RunResult]) -> SymptomTest:
    (variance_b, df_b), (variance_a, df_a) = _movement(before), _movement(after)
    if math.isnan(variance_b) or math.isnan(variance_a) or df_a == 0:
        return SymptomTest("curve movement", variance_b, variance_a, math.nan, "not measured")
    if variance_a == 0:
        p_value = 0.0 if variance_b > 0 else 1.0
    else:
        p_value = float(f_distribution.sf(variance_b / variance_a, df_b, df_a))
    return SymptomTest(
        "curve variance around its trend",
        variance_b,
        variance_a,
        p_value,
        f"F test ({df_b}, {df_a} df)",
    )


def _spikes(group: Sequence[RunResult]) -> tuple[int, int]:
    spikes = counted = 0
    for result in group:
        found = spike_rate(result.batches) if result.batches is not None else None
        if found is not None:
            spikes, counted = spikes + found[0], counted + found[1]
    return spikes, counted


def spikes_test(before: Sequence[RunResult], after: Sequence[RunResult]) -> SymptomTest:
    (spikes_b, counted_b), (spikes_a, counted_a) = _spikes(before), _spikes(after)
    rate_b = spikes_b / counted_b if counted_b else math.nan
    rate_a = spikes_a / counted_a if counted_a else math.nan
    if not counted_a or not counted_b:
        return SymptomTest("batch-loss spike rate", rate_b, rate_a, math.nan, "not measured")
    total, share = spikes_a + spikes_b, counted_a / (counted_a + counted_b)
    p_value = (
        1.0 if total == 0 else float(binomtest(spikes_a, total, share, alternative="less").pvalue)
    )
    return SymptomTest(
        "batch-loss spike rate",
        rate_b,
        rate_a,
        p_value,
        f"binomial: {spikes_a} of {total} spikes in the fix's {share:.0%} of the batches",
    )


def cross_fitted(run_dir: Path) -> np.ndarray:
    """Per validation image, right/wrong at the epoch the *other* half of the images picks
    (lowest mean loss on that half) from the run's validation record; images split by parity."""
    record = load_validation_record(run_dir / "validation_record.npz")
    if not record.same_images_every_epoch:
        raise ValueError(f"{run_dir}: cross-fitting needs every image scored every epoch")
    halves = np.arange(record.images) % 2
    correct = np.empty(record.images, dtype=bool)
    for half in (0, 1):
        chooser = halves == half
        epoch = int(np.argmin(record.loss[:, chooser].astype(float).mean(axis=1)))
        correct[~chooser] = record.correct[epoch, ~chooser] == 1
    return correct


def held_out_test(before: Sequence[RunResult], after: Sequence[RunResult]) -> SymptomTest:
    """Early stopping scored on images that did not pick its epoch, against the last epoch."""
    last = np.stack([r.correct for r in before])
    stopped = np.stack([cross_fitted(r.run_dir) for r in after])
    return _improvement_test(
        "held-out accuracy (two-fold cross-fitted epoch choice)", before, after, last, stopped
    )


def symptom_test(code: str, before: Sequence[RunResult], after: Sequence[RunResult], change=None):
    """The named finding's symptom test, or None when the finding names no measurable one.
    OVERFITTING's is held-out accuracy when its fix stops early, else accuracy (more data)."""
    symptom = SYMPTOMS.get(code)
    if code == "OVERFITTING" and "early_stopping" not in (change or {}):
        symptom = "accuracy"
    if symptom == "accuracy":
        return accuracy_test(before, after)
    if symptom in ("lag", "shift"):
        return gap_test(before, after, symptom)
    if symptom == "movement":
        return movement_test(before, after)
    if symptom == "spikes":
        return spikes_test(before, after)
    if symptom == "held-out accuracy":
        return held_out_test(before, after)
    return None
