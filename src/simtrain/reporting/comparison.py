"""Compare trained runs: which ones tell the classes apart, and which beat the baseline.

Accuracy comes from each replicate's predictions on the full validation set (the same images,
in the same order, for every run), so runs are compared image by image, under the declared
measure (`run_summary.DECISION_MEASURE`: precise BatchNorm statistics; the last epoch's
stored-statistics accuracy and the mean of the last epochs are shown beside it). A run trained
once gets a Wilson interval and an exact McNemar test, which count the validation images'
sampling only (its training variance is unknown); a run with replicates (`repeats`) gets its
mean over seeds, with an interval and a test that count the seeds and the images once each,
seed by seed when both runs were trained with the same seeds (simtrain.reporting.statistics).
The "beats the baseline" tests of one table are Holm-corrected together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from simtrain.reporting.run_results import RunResult
from simtrain.reporting.run_summary import (
    group_main_finding,
    main_finding,
    summarise_group,
    summarise_run,
)
from simtrain.reporting.statistics import AccuracyTest, compare_accuracy, holm
from simtrain.reporting.variance_components import pair_by_seed

BASELINE_MODEL = "baseline"
# Family-wise significance level for "beats the baseline": one pre-planned test per run against
# one baseline, Holm-corrected over the table's tests.
ALPHA = 0.05
# training_variance: "measured" over >= 2 seeds, "unknown" for one seed (its luck is the run's).
_RUN_COLUMNS = ["run", "model", "seeds", "training_variance", "train_images"]
_RUN_COLUMNS += ["validation_images", "epochs"]
# accuracy/ci_*/seed_accuracies: the decision measure (precise BN); final_*: the last epoch with
# stored statistics; last_epochs_val_accuracy: the last epochs' mean; seed_instability: seeds
# that differ beyond their images, with the cause found.
_ACCURACY_COLUMNS = ["measure", "accuracy", "ci_low", "ci_high", "seed_sd", "seed_accuracies"]
_ACCURACY_COLUMNS += ["interval", "final_val_accuracy", "final_ci_low", "final_ci_high"]
_ACCURACY_COLUMNS += ["final_seed_accuracies", "last_epochs_val_accuracy", "best_val_accuracy"]
_ACCURACY_COLUMNS += ["seed_instability"]
_OTHER_COLUMNS = ["chance", "majority_rate", "fluctuation_score", "main_finding"]
# p_value: the test's own; p_holm: Holm-adjusted over the table's tests (the decision's).
_COST_COLUMNS = ["images_per_second", "training_seconds", "beats_baseline", "p_value", "p_holm"]
_COST_COLUMNS += ["test"]
# under_trained: "yes" when a replicate's diagnostics found it UNDER_TRAINED (not above chance
# is then inconclusive); verifies: the run and finding whose fix a sibling run tries.
COLUMNS = _RUN_COLUMNS + _ACCURACY_COLUMNS + _OTHER_COLUMNS + _COST_COLUMNS
COLUMNS += ["under_trained", "verifies"]
__all__ = ["compare_runs", "correct_matrix", "main_finding", "group_main_finding"]
__all__ += ["summarise_run", "summarise_group", "compare_groups", "learning_curve"]


def check_same_images(run_a: RunResult, run_b: RunResult) -> None:
    """Raise unless both runs' predictions list the same validation images in the same order."""
    if run_a.predictions is None or run_b.predictions is None:
        raise ValueError(f"runs {run_a.run!r} and {run_b.run!r}: both need predictions.tsv")
    a, b = run_a.predictions, run_b.predictions
    same = len(a) == len(b) and (
        np.array_equal(a["index"].to_numpy(), b["index"].to_numpy())
        and np.array_equal(a["true"].to_numpy(), b["true"].to_numpy())
    )
    if not same:
        raise ValueError(
            f"runs {run_a.run!r} and {run_b.run!r}: predictions.tsv do not list the same "
            f"validation images in the same order (index/true columns differ)"
        )


def group_replicates(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    """Replicates by run name, runs in order of first appearance, replicates by number."""
    groups: dict[str, list[RunResult]] = {}
    for result in results:
        groups.setdefault(result.run, []).append(result)
    for run, group in groups.items():
        numbers = [r.replicate for r in group]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"run {run!r}: replicate numbers repeat: {numbers}")
        group.sort(key=lambda r: r.replicate)
    return groups


def correct_matrix(group: Sequence[RunResult], measure: str = "robust") -> np.ndarray | None:
    """(replicates, images) right/wrong of a run's replicates under the decision measure
    ("robust": precise BN) or the last epoch's ("final"); None without predictions."""
    if any(r.predictions is None or len(r.predictions) == 0 for r in group):
        return None
    for other in group[1:]:
        check_same_images(group[0], other)
    return np.stack([r.robust_correct if measure == "robust" else r.correct for r in group])


def replicate_seeds(group: Sequence[RunResult]) -> list[int] | None:
    """The training seed of each replicate (metrics.json "seed"); None if any is not recorded."""
    seeds = [r.metrics.get("seed") for r in group]
    if any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        return None
    return seeds


def seed_independent(group: Sequence[RunResult]) -> bool:
    """A run whose training does not depend on its seed (the HOG baseline on all its training
    images, metrics.json "seed_independent"): one replicate is all of its replicates."""
    return len(group) == 1 and bool(group[0].metrics.get("seed_independent"))


def compare_groups(
    group_a: Sequence[RunResult],
    group_b: Sequence[RunResult],
    correct_a: np.ndarray,
    correct_b: np.ndarray,
) -> AccuracyTest:
    """Run A's replicates against run B's on the same images (`correct_*`: their
    `correct_matrix`), seed by seed when both were trained with the same seeds (a sibling
    trained with one change shares its run's: `pair_by_seed`) or when one trains the same model
    whatever its seed (`seed_independent`), else unpaired."""
    for fixed, other, swap in ((group_b, correct_a, False), (group_a, correct_b, True)):
        if seed_independent(fixed) and len(other) > 1:
            # Every seed trains the same model: it pairs with each of the other's seeds.
            repeated = np.repeat((correct_a if swap else correct_b)[:1], len(other), axis=0)
            a, b = (repeated, other) if swap else (other, repeated)
            return compare_accuracy(a, b, paired=True)
    seeds_a, seeds_b = replicate_seeds(group_a), replicate_seeds(group_b)
    pairs = None if seeds_a is None or seeds_b is None else pair_by_seed(seeds_a, seeds_b)
    if pairs is None:
        return compare_accuracy(correct_a, correct_b)
    rows_a, rows_b = pairs
    return compare_accuracy(correct_a[rows_a], correct_b[rows_b], paired=True)


def _pick_baseline(groups: dict[str, list[RunResult]], baseline: str | None) -> str | None:
    if baseline is not None:
        if baseline not in groups:
            raise ValueError(f"baseline run {baseline!r} not among {list(groups)}")
        return baseline
    return next((run for run, group in groups.items() if group[0].model == BASELINE_MODEL), None)


def compare_runs(
    results: Sequence[RunResult],
    baseline: str | None = None,
    other_tests: Sequence[float] = (),
) -> pd.DataFrame:
    """One row per run (its replicates together), in order of first appearance.

    `baseline` names the reference run; None picks the first run whose model is 'baseline'
    (no reference if there is none). "Beats the baseline": a higher mean accuracy (the decision
    measure) and a
    Holm-adjusted p < ALPHA over the table's tests (`compare_groups`: McNemar for one
    replicate each, else a test counting seeds and images once each). `other_tests`: the
    p-values of the other tests the same report shows (the verified fixes' symptom tests),
    adjusted in the same family; their adjusted values are in attrs["other_p_holm"].
    """
    if not results:
        raise ValueError("compare_runs needs at least one run")
    groups = group_replicates(results)
    reference = _pick_baseline(groups, baseline)
    reference_correct = correct_matrix(groups[reference]) if reference is not None else None
    rows, higher = [], []
    for run, group in groups.items():
        correct = correct_matrix(group)
        row = summarise_group(group, correct, correct_matrix(group, "final"))
        row.update(beats_baseline="", p_value=math.nan, test="")
        higher.append(False)
        if run != reference and correct is not None and reference_correct is not None:
            for replicate in group:
                check_same_images(replicate, groups[reference][0])
            outcome = compare_groups(group, groups[reference], correct, reference_correct)
            higher[-1] = outcome.difference > 0
            row.update(beats_baseline="no", p_value=outcome.p_value, test=outcome.test)
        rows.append(row)
    family = holm([r["p_value"] for r in rows] + list(other_tests))
    for row, is_higher, adjusted in zip(rows, higher, family):
        row["p_holm"] = adjusted
        if is_higher and adjusted < ALPHA:
            row["beats_baseline"] = "yes"
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("seeds", "train_images", "validation_images", "epochs"):
        table[column] = pd.array(table[column], dtype="Int64")
    table.attrs["baseline"] = reference
    table.attrs["other_p_holm"] = family[len(rows) :]
    return table


def learning_curve(table_or_results: pd.DataFrame | Sequence[RunResult]) -> pd.DataFrame:
    """Points of data-size sweeps: models with runs at >= 2 distinct train_images, sorted."""
    if isinstance(table_or_results, pd.DataFrame):
        table = table_or_results
    else:
        groups = group_replicates(table_or_results).values()
        rows = [summarise_group(g, correct_matrix(g), correct_matrix(g, "final")) for g in groups]
        table = pd.DataFrame(rows, columns=COLUMNS)
    columns = ["model", "train_images", "run", "accuracy", "ci_low", "ci_high"]
    columns += ["best_val_accuracy", "chance"]
    points = table.dropna(subset=["train_images"])
    sizes = points.groupby("model")["train_images"].nunique()
    points = points[points["model"].isin(sizes[sizes >= 2].index)]
    return points[columns].sort_values(["model", "train_images", "run"], ignore_index=True)
