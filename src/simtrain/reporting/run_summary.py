"""One comparison row per run: its accuracy measures, main finding and seed stability.

Accuracy is measured three ways on the full validation set, and the comparison decides on one,
declared here (DECISION_MEASURE):

- **precise BN** (the decision): the final weights with BatchNorm statistics recomputed over
  un-augmented training batches after training (predictions_precise_bn.tsv; as PreciseBN in
  pycls and detectron2). It measures what the network learned, not where its moving
  statistics happened to be at the last epoch; for a model without BatchNorm (and the HOG
  baseline) it is the final model's accuracy.
- **final**: the last epoch with the stored statistics (predictions.tsv).
- **last epochs**: the mean of the last epochs' validation accuracy (history.tsv).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import f as f_distribution

from simtrain.common.runs import parse_sibling
from simtrain.reporting.run_results import RunResult
from simtrain.reporting.statistics import accuracy_interval, wilson_interval

DECISION_MEASURE = "precise BN"
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
UNDER_TRAINED = "UNDER_TRAINED"
# Which of several findings of one severity is a run's main one: a cause before the findings it
# explains. A memorising run still lowers its training loss (OVERFITTING before UNDER_TRAINED);
# steps that throw the weights around keep the loss from settling, so an unstable run still
# looks as if it were learning (UNSTABLE_OPTIMIZATION before UNDER_TRAINED; more epochs at the
# same steps would not settle it); a run stopped early shows immature statistics and
# predictions (UNDER_TRAINED before those); an augmentation shift puts BatchNorm statistics off
# (AUGMENTATION_SHIFT before BATCHNORM_STATISTICS).
MAIN_PRIORITY = (
    "OVERFITTING",
    "UNSTABLE_OPTIMIZATION",
    UNDER_TRAINED,
    "AUGMENTATION_SHIFT",
    "BATCHNORM_STATISTICS",
)
# Seed instability: the seeds' final accuracies differ more than their images explain (F test
# of the seed effect in the seeds × images table, p < SEED_ALPHA) by a spread that matters
# (SD of at least SEED_SPREAD_FLOOR, the diagnostics' practical floor).
SEED_ALPHA = 0.01
SEED_SPREAD_FLOOR = 0.03


def _number(value: object) -> float:
    """A float, NaN for null / missing / non-numbers (JSON null is how runs say 'not measured')."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number else math.nan


def _ranked_main(diagnostics: dict | None) -> tuple[int, str]:
    """(severity rank, code) of a run's main finding: the cause of a validation curve that
    moves beyond its noise (or UNEXPLAINED_FLUCTUATION); else the most severe finding, equals
    in MAIN_PRIORITY's order, then as diagnosed; (0, 'STABLE') if the checks found nothing
    wrong and the curve is calm; (0, '') without a verdict."""
    diagnostics = diagnostics or {}
    findings = diagnostics.get("findings") or []
    severity = {f["code"]: SEVERITY_RANK.get(f.get("severity"), 0) for f in findings}
    fluctuation = diagnostics.get("fluctuation") or {}
    cause = fluctuation.get("cause")
    if fluctuation.get("beyond_noise") and cause:
        return max(severity.get(cause, 1), 1), cause
    # An info finding says a check found nothing wrong ("statistics match the weights"): it is
    # no run's main finding, except STABLE, the verdict that the curve is calm.
    raised = [f for f in findings if SEVERITY_RANK.get(f.get("severity"), 0) > 0]
    if not raised:
        return 0, ("STABLE" if "STABLE" in severity else "")
    ranked = [
        (
            SEVERITY_RANK[f["severity"]],
            -MAIN_PRIORITY.index(f["code"]) if f["code"] in MAIN_PRIORITY else -len(MAIN_PRIORITY),
            -i,
            f["code"],
        )
        for i, f in enumerate(raised)
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


def summarise_run(result: RunResult) -> dict:
    """One replicate's row without the baseline columns."""
    metrics = result.metrics
    row: dict = {"run": result.run, "model": result.model, "measure": DECISION_MEASURE}
    row["train_images"] = metrics.get("train_images")
    row["validation_images"] = metrics.get("validation_images")
    epochs = metrics.get("epochs")
    if epochs is None and result.history is not None:
        epochs = len(result.history)
    row["epochs"] = epochs
    row["best_val_accuracy"] = _number(metrics.get("best_val_accuracy"))
    row["last_epochs_val_accuracy"] = _number(metrics.get("last_epochs_val_accuracy"))
    # From the predictions: the full validation set, whatever the history used.
    final = robust = _number(metrics.get("final_val_accuracy"))
    intervals = {"final": (math.nan, math.nan), "robust": (math.nan, math.nan)}
    chance = majority = math.nan
    if result.predictions is not None and len(result.predictions) > 0:
        n = len(result.predictions)
        row["validation_images"] = n
        for name, correct in (("final", result.correct), ("robust", result.robust_correct)):
            intervals[name] = wilson_interval(int(correct.sum()), n)
        final, robust = float(result.correct.mean()), float(result.robust_correct.mean())
        chance = 1 / len(result.classes)
        majority = float(result.predictions["true"].value_counts().iloc[0] / n)
    row.update(accuracy=robust, ci_low=intervals["robust"][0], ci_high=intervals["robust"][1])
    row.update(final_val_accuracy=final, final_ci_low=intervals["final"][0])
    row.update(final_ci_high=intervals["final"][1], chance=chance, majority_rate=majority)
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


def seed_effect(correct: np.ndarray) -> tuple[float, float]:
    """(SD of the seeds' accuracies, p-value of the F test that seeds differ beyond what the
    images explain) for a (seeds, images) 0/1 table; (nan, nan) for one seed."""
    correct = np.asarray(correct, dtype=float)
    seeds, images = correct.shape
    if seeds < 2:
        return math.nan, math.nan
    rows, columns = correct.mean(axis=1), correct.mean(axis=0)
    residual = correct - rows[:, None] - columns[None, :] + correct.mean()
    mean_square_seeds = images * np.var(rows, ddof=1)
    df_residual = (seeds - 1) * (images - 1)
    mean_square_residual = float(np.sum(residual**2)) / df_residual
    spread = float(np.std(rows, ddof=1))
    if mean_square_residual == 0:
        return spread, 0.0 if mean_square_seeds > 0 else 1.0
    statistic = mean_square_seeds / mean_square_residual
    return spread, float(f_distribution.sf(statistic, seeds - 1, df_residual))


def seed_instability(final: np.ndarray | None, robust: np.ndarray | None) -> str:
    """'' when the seeds agree (or one seed); else 'yes: <cause>' — BATCHNORM_STATISTICS when
    precise BN statistics remove the spread, 'cause unknown' otherwise."""
    if final is None or final.shape[0] < 2:
        return ""
    spread, p_value = seed_effect(final)
    if not (p_value < SEED_ALPHA and spread >= SEED_SPREAD_FLOOR):
        return ""
    if robust is not None and not np.array_equal(robust, final):
        robust_spread, robust_p = seed_effect(robust)
        if not (robust_p < SEED_ALPHA and robust_spread >= SEED_SPREAD_FLOOR):
            return "yes: BATCHNORM_STATISTICS (precise BN statistics remove the spread)"
    return "yes: cause unknown"


def summarise_group(
    group: Sequence[RunResult], correct: np.ndarray | None, final: np.ndarray | None = None
) -> dict:
    """One comparison row for a run's replicates: means over seeds, intervals counting both
    the seeds and the validation images (Wilson over images for a single replicate).
    `correct` is the group's `correct_matrix` under the decision measure, `final` under the
    last epoch's stored statistics (None: the same)."""
    final = correct if final is None else final
    rows = [summarise_run(result) for result in group]
    row = dict(rows[0])
    for column in (
        "best_val_accuracy",
        "last_epochs_val_accuracy",
        "fluctuation_score",
        "images_per_second",
    ):
        values = [r[column] for r in rows if not math.isnan(r[column])]
        row[column] = float(np.mean(values)) if values else math.nan
    row["training_seconds"] = float(np.mean([r["training_seconds"] for r in rows]))
    row["main_finding"] = group_main_finding([r.diagnostics for r in group])
    row["under_trained"] = "yes" if any(r["under_trained"] for r in rows) else ""
    row["seeds"] = len(group)
    row["training_variance"] = "measured" if len(group) > 1 else "unknown"
    row["seed_accuracies"] = " ".join(f"{r['accuracy']:.3f}" for r in rows)
    row["final_seed_accuracies"] = " ".join(f"{r['final_val_accuracy']:.3f}" for r in rows)
    row["seed_sd"], row["interval"] = math.nan, ""
    if correct is not None:
        interval = accuracy_interval(correct)
        row.update(accuracy=interval.mean, ci_low=interval.low, ci_high=interval.high)
        row.update(seed_sd=interval.seed_sd, interval=interval.method)
    if final is not None:
        interval = accuracy_interval(final)
        row.update(final_val_accuracy=interval.mean, final_ci_low=interval.low)
        row.update(final_ci_high=interval.high)
    row["seed_instability"] = seed_instability(final, correct)
    parent, code = parse_sibling(row["run"])
    row["verifies"] = f"{parent}: {code}" if code else ""
    return row
