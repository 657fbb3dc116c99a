"""Compare trained runs: which ones tell the classes apart, and which beat the baseline.

Accuracy comes from each replicate's final predictions on the full validation set (the same
images, in the same order, for every run), so runs are compared image by image. A run trained
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

from simtrain.common.runs import parse_sibling
from simtrain.reporting.run_results import RunResult
from simtrain.reporting.statistics import (
    AccuracyTest,
    accuracy_interval,
    compare_accuracy,
    holm,
    wilson_interval,
)
from simtrain.reporting.variance_components import pair_by_seed

BASELINE_MODEL = "baseline"
# Family-wise significance level for "beats the baseline": one pre-planned test per run against
# one baseline, Holm-corrected over the table's tests.
ALPHA = 0.05
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
# training_variance: "measured" over >= 2 seeds, "unknown" for one seed (its luck is the run's).
_RUN_COLUMNS = ["run", "model", "seeds", "training_variance", "train_images"]
_RUN_COLUMNS += ["validation_images", "epochs"]
_ACCURACY_COLUMNS = ["best_val_accuracy", "final_val_accuracy", "final_ci_low", "final_ci_high"]
_ACCURACY_COLUMNS += ["seed_sd", "seed_accuracies", "interval"]
_OTHER_COLUMNS = ["chance", "majority_rate", "fluctuation_score", "main_finding"]
# p_value: the test's own; p_holm: Holm-adjusted over the table's tests (the decision's).
_COST_COLUMNS = ["images_per_second", "training_seconds", "beats_baseline", "p_value", "p_holm"]
_COST_COLUMNS += ["test"]
# under_trained: "yes" when a replicate's diagnostics found it UNDER_TRAINED (not above chance
# is then inconclusive); verifies: the run and finding whose fix a sibling run tries.
COLUMNS = _RUN_COLUMNS + _ACCURACY_COLUMNS + _OTHER_COLUMNS + _COST_COLUMNS
COLUMNS += ["under_trained", "verifies"]
UNDER_TRAINED = "UNDER_TRAINED"


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


def correct_matrix(group: Sequence[RunResult]) -> np.ndarray | None:
    """(replicates, images) right/wrong of a run's replicates; None without predictions."""
    if any(r.predictions is None or len(r.predictions) == 0 for r in group):
        return None
    for other in group[1:]:
        check_same_images(group[0], other)
    return np.stack([r.correct for r in group])


def replicate_seeds(group: Sequence[RunResult]) -> list[int] | None:
    """The training seed of each replicate (metrics.json "seed"); None if any is not recorded."""
    seeds = [r.metrics.get("seed") for r in group]
    if any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        return None
    return seeds


def compare_groups(
    group_a: Sequence[RunResult],
    group_b: Sequence[RunResult],
    correct_a: np.ndarray,
    correct_b: np.ndarray,
) -> AccuracyTest:
    """Run A's replicates against run B's on the same images (`correct_*`: their
    `correct_matrix`), seed by seed when both were trained with the same seeds (a sibling
    trained with one change shares its run's: `pair_by_seed`), else unpaired."""
    seeds_a, seeds_b = replicate_seeds(group_a), replicate_seeds(group_b)
    pairs = None if seeds_a is None or seeds_b is None else pair_by_seed(seeds_a, seeds_b)
    if pairs is None:
        return compare_accuracy(correct_a, correct_b)
    rows_a, rows_b = pairs
    return compare_accuracy(correct_a[rows_a], correct_b[rows_b], paired=True)


def _ranked_main(diagnostics: dict | None) -> tuple[int, str]:
    """(severity rank, code) of a run's main finding: the cause of a validation curve that
    moves beyond its noise (or UNEXPLAINED_FLUCTUATION), else the most severe finding,
    STABLE first among info-only ones; (0, '') if none."""
    diagnostics = diagnostics or {}
    findings = diagnostics.get("findings") or []
    severity = {f["code"]: SEVERITY_RANK.get(f.get("severity"), 0) for f in findings}
    fluctuation = diagnostics.get("fluctuation") or {}
    cause = fluctuation.get("cause")
    if fluctuation.get("beyond_noise") and cause:
        return max(severity.get(cause, 1), 1), cause
    if not findings:
        return 0, ""
    ranked = [
        (SEVERITY_RANK.get(f.get("severity"), 0), f.get("code") == "STABLE", -i, f["code"])
        for i, f in enumerate(findings)
    ]
    best = max(ranked)
    return best[0], best[3]


def main_finding(diagnostics: dict | None) -> str:
    """Code of a run's main finding (see `_ranked_main`); '' if none."""
    return _ranked_main(diagnostics)[1]


def group_main_finding(diagnostics: Sequence[dict | None]) -> str:
    """The main finding of a run's replicates: the most severe of their main findings, the most
    frequent of equals, then the earliest replicate's."""
    mains = [_ranked_main(d) for d in diagnostics]
    counts = {code: sum(c == code for _, c in mains) for _, code in mains}
    ranked = [(rank, counts[code], -i, code) for i, (rank, code) in enumerate(mains) if code]
    return max(ranked)[3] if ranked else ""


def _number(value: object) -> float:
    """A float, NaN for null / missing / non-numbers (JSON null is how runs say 'not measured')."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number else math.nan


def summarise_run(result: RunResult) -> dict:
    """One comparison row without the baseline columns."""
    metrics = result.metrics
    row: dict = {"run": result.run, "model": result.model}
    row["train_images"] = metrics.get("train_images")
    row["validation_images"] = metrics.get("validation_images")
    epochs = metrics.get("epochs")
    if epochs is None and result.history is not None:
        epochs = len(result.history)
    row["epochs"] = epochs
    row["best_val_accuracy"] = _number(metrics.get("best_val_accuracy"))
    # Final accuracy from the predictions: the full validation set, whatever the history used.
    final = _number(metrics.get("final_val_accuracy"))
    low = high = chance = majority = math.nan
    if result.predictions is not None and len(result.predictions) > 0:
        correct = result.correct
        n = len(correct)
        row["validation_images"] = n
        final = float(correct.mean())
        low, high = wilson_interval(int(correct.sum()), n)
        chance = 1 / len(result.classes)
        majority = float(result.predictions["true"].value_counts().iloc[0] / n)
    row.update(final_val_accuracy=final, final_ci_low=low, final_ci_high=high)
    row.update(chance=chance, majority_rate=majority)
    row["fluctuation_score"] = _number((result.diagnostics or {}).get("fluctuation_score"))
    row["main_finding"] = main_finding(result.diagnostics)
    codes = {f.get("code") for f in (result.diagnostics or {}).get("findings") or []}
    row["under_trained"] = "yes" if UNDER_TRAINED in codes else ""
    # metrics.json holds the totals; the per-epoch timing.tsv stands in where they are null.
    speed, seconds = _number(metrics.get("images_per_second")), _number(metrics.get("seconds"))
    if result.timing is not None and len(result.timing) > 0:
        if math.isnan(speed):
            speed = float(result.timing["images_per_second"].median())
        if math.isnan(seconds):
            seconds = float(result.timing["seconds"].sum())
    row.update(images_per_second=speed, training_seconds=seconds)
    return row


def summarise_group(group: Sequence[RunResult], correct: np.ndarray | None) -> dict:
    """One comparison row for a run's replicates: means over seeds, an interval counting both
    the seeds and the validation images (Wilson over images for a single replicate).
    `correct` is the group's `correct_matrix`."""
    rows = [summarise_run(result) for result in group]
    row = dict(rows[0])
    for column in ("best_val_accuracy", "fluctuation_score", "images_per_second"):
        values = [r[column] for r in rows if not math.isnan(r[column])]
        row[column] = float(np.mean(values)) if values else math.nan
    row["training_seconds"] = float(np.mean([r["training_seconds"] for r in rows]))
    row["main_finding"] = group_main_finding([r.diagnostics for r in group])
    row["under_trained"] = "yes" if any(r["under_trained"] for r in rows) else ""
    row["seeds"] = len(group)
    row["training_variance"] = "measured" if len(group) > 1 else "unknown"
    row["seed_accuracies"] = " ".join(f"{r['final_val_accuracy']:.3f}" for r in rows)
    row["seed_sd"], row["interval"] = math.nan, ""
    if correct is not None:
        interval = accuracy_interval(correct)
        row.update(final_val_accuracy=interval.mean, final_ci_low=interval.low)
        row.update(final_ci_high=interval.high, seed_sd=interval.seed_sd)
        row["interval"] = interval.method
    parent, code = parse_sibling(row["run"])
    row["verifies"] = f"{parent}: {code}" if code else ""
    return row


def _pick_baseline(groups: dict[str, list[RunResult]], baseline: str | None) -> str | None:
    if baseline is not None:
        if baseline not in groups:
            raise ValueError(f"baseline run {baseline!r} not among {list(groups)}")
        return baseline
    return next((run for run, group in groups.items() if group[0].model == BASELINE_MODEL), None)


def compare_runs(results: Sequence[RunResult], baseline: str | None = None) -> pd.DataFrame:
    """One row per run (its replicates together), in order of first appearance.

    `baseline` names the reference run; None picks the first run whose model is 'baseline'
    (no reference if there is none). "Beats the baseline": a higher mean final accuracy and a
    Holm-adjusted p < ALPHA over the table's tests (`compare_groups`: McNemar for one
    replicate each, else a test counting seeds and images once each).
    """
    if not results:
        raise ValueError("compare_runs needs at least one run")
    groups = group_replicates(results)
    reference = _pick_baseline(groups, baseline)
    reference_correct = correct_matrix(groups[reference]) if reference is not None else None
    rows, higher = [], []
    for run, group in groups.items():
        correct = correct_matrix(group)
        row = summarise_group(group, correct)
        row.update(beats_baseline="", p_value=math.nan, test="")
        higher.append(False)
        if run != reference and correct is not None and reference_correct is not None:
            for replicate in group:
                check_same_images(replicate, groups[reference][0])
            outcome = compare_groups(group, groups[reference], correct, reference_correct)
            higher[-1] = outcome.difference > 0
            row.update(beats_baseline="no", p_value=outcome.p_value, test=outcome.test)
        rows.append(row)
    for row, is_higher, adjusted in zip(rows, higher, holm([r["p_value"] for r in rows])):
        row["p_holm"] = adjusted
        if is_higher and adjusted < ALPHA:
            row["beats_baseline"] = "yes"
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("seeds", "train_images", "validation_images", "epochs"):
        table[column] = pd.array(table[column], dtype="Int64")
    table.attrs["baseline"] = reference
    return table


def learning_curve(table_or_results: pd.DataFrame | Sequence[RunResult]) -> pd.DataFrame:
    """Points of data-size sweeps: models with runs at >= 2 distinct train_images, sorted."""
    if isinstance(table_or_results, pd.DataFrame):
        table = table_or_results
    else:
        groups = group_replicates(table_or_results).values()
        rows = [summarise_group(g, correct_matrix(g)) for g in groups]
        table = pd.DataFrame(rows, columns=COLUMNS)
    columns = ["model", "train_images", "run", "final_val_accuracy", "final_ci_low"]
    columns += ["final_ci_high", "best_val_accuracy", "chance"]
    points = table.dropna(subset=["train_images"])
    sizes = points.groupby("model")["train_images"].nunique()
    points = points[points["model"].isin(sizes[sizes >= 2].index)]
    return points[columns].sort_values(["model", "train_images", "run"], ignore_index=True)
