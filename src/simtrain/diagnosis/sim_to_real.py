"""SIM_TO_REAL_GAP: a run's accuracy on real images differs from its validation accuracy by
more than the noise of both.

The validation images (simulated, or a mix) and a real evaluation set are two independent
samples of images; the run's accuracy on each is a proportion. The test asks whether the two
accuracies differ beyond what sampling (and, with seed replicates, training) noise explains:

- one replicate: Newcombe's hybrid score interval (method 10, from the two Wilson intervals)
  for validation minus real accuracy; it counts the images' sampling noise only, as the
  comparison's Wilson interval does;
- several replicates (the same seeds scored on both sets): the mean over seeds of each
  seed's difference, with variance = seed-to-seed variance of the difference / seeds +
  each set's image variance (per-image accuracy averaged over seeds) / its images, and a t
  interval on seeds - 1 degrees of freedom (conservative, as in the comparison).

A gap is named when the 95 % interval excludes 0 (alpha 0.05, two-sided, fixed before
scoring; one test per run and set). Real accuracy below validation is a WARNING (validation
overstates what the network does on real images); above it, INFO.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import t as t_distribution

from simtrain.diagnosis.findings import Finding
from simtrain.reporting.statistics import wilson_interval

CODE = "SIM_TO_REAL_GAP"
ALPHA = 0.05


@dataclass(frozen=True)
class GapTest:
    """Validation vs real accuracy of one run (mean over its replicates) and their difference."""

    validation_accuracy: float
    real_accuracy: float
    difference: float  # validation minus real
    low: float  # 95 % interval of the difference
    high: float
    p_value: float | None  # t test with replicates; None for one replicate (interval only)
    method: str
    replicates: int
    validation_images: int
    real_images: int

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def _matrix(correct: np.ndarray, name: str) -> np.ndarray:
    matrix = np.atleast_2d(np.asarray(correct, dtype=float))
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(
            f"{name}: need (replicates, images) right/wrong values, got {matrix.shape}"
        )
    return matrix


def _newcombe(correct_a: int, n_a: int, correct_b: int, n_b: int, z: float):
    """Newcombe's (1998) hybrid score interval for p_a - p_b, independent samples."""
    p_a, p_b = correct_a / n_a, correct_b / n_b
    low_a, high_a = wilson_interval(correct_a, n_a, z)
    low_b, high_b = wilson_interval(correct_b, n_b, z)
    difference = p_a - p_b
    low = difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return difference, low, high


def gap_test(validation_correct: np.ndarray, real_correct: np.ndarray) -> GapTest:
    """Compare a run's validation and real accuracy; arrays are (replicates, images) of right
    (1) / wrong (0), row k the same seed in both (a 1-D array is one replicate)."""
    validation = _matrix(validation_correct, "validation_correct")
    real = _matrix(real_correct, "real_correct")
    if len(validation) != len(real):
        raise ValueError(
            f"validation has {len(validation)} replicate(s) but the real set {len(real)}: "
            "score the same seeds on both"
        )
    replicates, n_validation = validation.shape
    n_real = real.shape[1]
    if replicates == 1:
        difference, low, high = _newcombe(
            int(round(validation.sum())), n_validation, int(round(real.sum())), n_real, 1.96
        )
        p_value, method = None, "Newcombe hybrid score, 1 seed: images only"
    else:
        per_seed = validation.mean(axis=1) - real.mean(axis=1)
        difference = float(per_seed.mean())
        variance = float(np.var(per_seed, ddof=1)) / replicates
        variance += float(np.var(validation.mean(axis=0), ddof=1)) / n_validation
        variance += float(np.var(real.mean(axis=0), ddof=1)) / n_real
        df = replicates - 1
        if variance == 0:
            low = high = difference
            p_value = 1.0 if difference == 0 else 0.0
        else:
            half = float(t_distribution.ppf(1 - ALPHA / 2, df)) * math.sqrt(variance)
            low, high = difference - half, difference + half
            p_value = float(2 * t_distribution.sf(abs(difference) / math.sqrt(variance), df))
        method = f"t over {replicates} seeds + images, {df} df"
    return GapTest(
        validation_accuracy=float(validation.mean()),
        real_accuracy=float(real.mean()),
        difference=float(difference),
        low=float(low),
        high=float(high),
        p_value=p_value,
        method=method,
        replicates=replicates,
        validation_images=n_validation,
        real_images=n_real,
    )


def sim_to_real_gap(
    validation_correct: np.ndarray,
    real_correct: np.ndarray,
    *,
    set_name: str,
    missing_classes: tuple[str, ...] = (),
) -> Finding | None:
    """The SIM_TO_REAL_GAP finding of one run on one evaluation set, or None when validation
    and real accuracy agree within their noise (see the module docstring for the test)."""
    test = gap_test(validation_correct, real_correct)
    if not test.significant:
        return None
    worse = test.difference > 0
    missing = (
        f" The set has no images of {', '.join(missing_classes)}; its accuracy is over the "
        "other classes."
        if missing_classes
        else ""
    )
    return Finding(
        code=CODE,
        severity="warning" if worse else "info",
        title=(
            f"Real images of '{set_name}' are classified "
            f"{'worse' if worse else 'better'} than the validation images"
        ),
        evidence={
            "validation_accuracy": test.validation_accuracy,
            "real_accuracy": test.real_accuracy,
            "gap": test.difference,
            "gap_ci_low": test.low,
            "gap_ci_high": test.high,
            "p_value": test.p_value,
            "replicates": test.replicates,
            "validation_images": test.validation_images,
            "real_images": test.real_images,
        },
        explanation=(
            f"Validation accuracy {test.validation_accuracy:.3f} vs {test.real_accuracy:.3f} on "
            f"the {test.real_images} images of '{set_name}': a difference of "
            f"{test.difference:+.3f} (95 % interval {test.low:+.3f} to {test.high:+.3f}, "
            f"{test.method}) that sampling{' and training' if test.replicates > 1 else ''} noise "
            "does not explain. "
            + (
                "The network relies on something the simulated images have and the real ones "
                "do not (or the reverse): validation accuracy overstates its use on real data."
                if worse
                else "The real images are easier for the network than the validation images."
            )
            + missing
        ),
        fix=(
            "Compare results/samples/ with the real images and bring the simulation closer "
            "(noise, contrast, background, object sizes), add augmentation that covers the "
            "difference, or train on real images of the classes that have them (classes.<name>."
            "folder)."
            if worse
            else "No fix needed; check that the real set's labels and classes are what you expect."
        ),
    )


def _right(predictions: pd.DataFrame) -> np.ndarray:
    return (predictions["true"].astype(str) == predictions["predicted"].astype(str)).to_numpy()


def sim_to_real_findings(
    validation: pd.DataFrame, sets: Mapping[str, pd.DataFrame], classes: Sequence[str]
) -> list[Finding]:
    """One replicate's SIM_TO_REAL_GAP findings: `validation` is its predictions.tsv, `sets`
    maps each evaluation set to its evaluation/<set>/predictions.tsv (both with true and
    predicted columns), `classes` the configured classes (to name those a set lacks)."""
    findings = []
    for name, predictions in sets.items():
        present = set(predictions["true"].astype(str))
        finding = sim_to_real_gap(
            _right(validation),
            _right(predictions),
            set_name=name,
            missing_classes=tuple(c for c in classes if c not in present),
        )
        if finding is not None:
            findings.append(finding)
    return findings
