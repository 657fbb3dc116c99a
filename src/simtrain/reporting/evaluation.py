"""Sim-to-real evaluation report: every run on every labelled real-image set.

Per set and run (over its seed replicates): accuracy with its 95 % interval
(`statistics.accuracy_interval`: Wilson for one seed, t over seeds + images for several), the
paired test against the baseline on the same real images (`comparison.compare_groups`), the
sim-to-real gap test against the run's own validation accuracy
(`simtrain.diagnosis.sim_to_real`), and per class the share of its images classified right
(from the confusion matrices each replicate wrote). Classes a set has no images of are listed;
its accuracy is over the classes it has.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.common.files import write_text, write_tsv
from simtrain.diagnosis.sim_to_real import gap_test, sim_to_real_gap
from simtrain.evaluation.scoring import read_set_predictions
from simtrain.reporting.comparison import compare_groups
from simtrain.reporting.run_results import RunResult, load_run
from simtrain.reporting.statistics import accuracy_interval

BASELINE_MODEL = "baseline"
ALPHA = 0.05  # "beats the baseline on this set": one pre-planned test per run and set
EVALUATION_DIR = "evaluation"  # results/runs/<run>/seed-<k>/evaluation/<set>/
COLUMNS = [
    "set",
    "run",
    "model",
    "seeds",
    "images",
    "missing_classes",
    "accuracy",
    "ci_low",
    "ci_high",
    "interval",
    "validation_accuracy",
    "gap",
    "gap_ci_low",
    "gap_ci_high",
    "gap_p_value",
    "sim_to_real_gap",
    "beats_baseline",
    "baseline_p_value",
    "baseline_test",
]


def set_predictions_path(replicate_dir: str | os.PathLike, set_name: str) -> Path:
    return Path(replicate_dir) / EVALUATION_DIR / set_name / "predictions.tsv"


def _groups(replicate_dirs: Sequence[str | os.PathLike]) -> dict[str, list[RunResult]]:
    groups: dict[str, list[RunResult]] = {}
    for directory in replicate_dirs:
        result = load_run(directory)
        groups.setdefault(result.run, []).append(result)
    return {run: sorted(group, key=lambda r: r.replicate) for run, group in groups.items()}


def _real_correct(group: Sequence[RunResult], set_name: str) -> tuple[np.ndarray, pd.DataFrame]:
    """(replicates, images) right/wrong on the set, and the first replicate's predictions."""
    tables = [read_set_predictions(set_predictions_path(r.run_dir, set_name)) for r in group]
    files = tables[0]["file"].tolist()
    for result, table in zip(group, tables):
        if table["file"].tolist() != files:
            raise ValueError(f"{result.run_dir}: scored other images of set {set_name!r}")
    correct = np.stack([(t["true"] == t["predicted"]).to_numpy() for t in tables])
    return correct, pd.concat(tables, ignore_index=True)


def _validation_correct(group: Sequence[RunResult]) -> np.ndarray:
    """Validation right/wrong under the comparison's decision measure (precise BN)."""
    return np.stack([r.robust_correct for r in group])


def per_class_recall(predictions: pd.DataFrame, classes: Sequence[str]) -> dict[str, str]:
    """'right/images (share)' per class over all replicates' predictions; '-' for none."""
    cells = {}
    for name in classes:
        rows = predictions[predictions["true"] == name]
        right = int((rows["predicted"] == name).sum())
        cells[name] = f"{right / len(rows):.2f} ({right}/{len(rows)})" if len(rows) else "-"
    return cells


def evaluate_runs(
    replicate_dirs: Sequence[str | os.PathLike], sets: Sequence[str], classes: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list]:
    """(summary table, per set a class x run table of per-class accuracy, gap findings as
    (set, run, Finding))."""
    groups = _groups(replicate_dirs)
    baseline = next((run for run, g in groups.items() if g[0].model == BASELINE_MODEL), None)
    rows, per_class, findings = [], {}, []
    for set_name in sets:
        correct_of, recall = {}, {}
        for run, group in groups.items():
            correct_of[run], predictions = _real_correct(group, set_name)
            recall[run] = per_class_recall(predictions, classes)
        per_class[set_name] = pd.DataFrame(recall, index=list(classes))
        for run, group in groups.items():
            correct = correct_of[run]
            first = read_set_predictions(set_predictions_path(group[0].run_dir, set_name))
            missing = tuple(c for c in classes if c not in set(first["true"]))
            interval = accuracy_interval(correct)
            gap = gap_test(_validation_correct(group), correct)
            finding = sim_to_real_gap(
                _validation_correct(group), correct, set_name=set_name, missing_classes=missing
            )
            if finding is not None:
                findings.append((set_name, run, finding))
            row = {
                "set": set_name,
                "run": run,
                "model": group[0].model,
                "seeds": len(group),
                "images": correct.shape[1],
                "missing_classes": ",".join(missing),
                "accuracy": interval.mean,
                "ci_low": interval.low,
                "ci_high": interval.high,
                "interval": interval.method,
                "validation_accuracy": gap.validation_accuracy,
                "gap": gap.difference,
                "gap_ci_low": gap.low,
                "gap_ci_high": gap.high,
                "gap_p_value": math.nan if gap.p_value is None else gap.p_value,
                "sim_to_real_gap": finding.severity if finding is not None else "no",
                "beats_baseline": "",
                "baseline_p_value": math.nan,
                "baseline_test": "",
            }
            if baseline is not None and run != baseline:
                test = compare_groups(group, groups[baseline], correct, correct_of[baseline])
                row["beats_baseline"] = (
                    "yes" if test.difference > 0 and test.p_value < ALPHA else "no"
                )
                row["baseline_p_value"] = test.p_value
                row["baseline_test"] = test.test
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS), per_class, findings


def _number(value: float, digits: int = 3) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def evaluation_markdown(
    table: pd.DataFrame,
    per_class: Mapping[str, pd.DataFrame],
    findings: Sequence,
    set_counts: Mapping[str, Mapping[str, int]],
) -> str:
    """evaluation.md: per set, the runs' accuracy table, per-class accuracy and gap findings."""
    lines = [
        "# Sim-to-real evaluation",
        "",
        "Every trained run (all seed replicates; the final model of deep runs) scored on each "
        "labelled folder of real images. Accuracy: mean over seeds with a 95 % interval "
        "(Wilson over the images for one seed; t over seeds + images for several). *Gap*: "
        "validation minus real accuracy with its 95 % interval; a **sim-to-real gap** is "
        "named when that interval excludes 0. *Beats baseline*: higher accuracy than the "
        "baseline on the same real images, p < 0.05 (exact McNemar for one seed each; with "
        "seeds, the comparison's test, named in evaluation.tsv). Validation accuracies and "
        "the comparison of runs on simulated images are in [comparison.md](comparison.md).",
        "",
    ]
    for set_name, rows in table.groupby("set", sort=False):
        counts = set_counts[set_name]
        present = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
        missing = [name for name, n in counts.items() if not n]
        lines += [f"## {set_name}", "", f"{sum(counts.values())} images: {present}."]
        if missing:
            lines.append(
                f"No images of {', '.join(missing)} (allowed; accuracy is over the other classes)."
            )
        lines += [
            "",
            "| run | model | seeds | real accuracy (95 % CI) | validation | gap (95 % CI) "
            "| sim-to-real gap | beats baseline (p) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, row in rows.iterrows():
            beats = (
                f"{row['beats_baseline']} ({_number(row['baseline_p_value'], 3)})"
                if row["beats_baseline"]
                else "-"
            )
            gap = f"{row['gap']:+.3f} ({row['gap_ci_low']:+.3f} to {row['gap_ci_high']:+.3f})"
            verdict = row["sim_to_real_gap"]
            named = f"**{verdict}**" if verdict != "no" else "no"
            lines.append(
                f"| {row['run']} | {row['model']} | {row['seeds']} | "
                f"{_number(row['accuracy'])} ({_number(row['ci_low'])}-{_number(row['ci_high'])})"
                f" | {_number(row['validation_accuracy'])} | {gap} | "
                f"{named} | {beats} |"
            )
        recall = per_class[set_name]
        lines += [
            "",
            "Per class: share of its real images classified right (right/images over all "
            "seeds); full confusion matrices in `runs/<run>/seed-<k>/evaluation/"
            f"{set_name}/confusion.tsv`.",
            "",
            "| class | " + " | ".join(recall.columns) + " |",
            "|---|" + "---|" * len(recall.columns),
        ]
        for name, cells in recall.iterrows():
            lines.append(f"| {name} | " + " | ".join(cells.tolist()) + " |")
        set_findings = [(run, f) for s, run, f in findings if s == set_name]
        if set_findings:
            lines += ["", "Findings:", ""]
            for run, finding in set_findings:
                lines.append(
                    f"- **{finding.code}** ({finding.severity}) `{run}`: {finding.explanation} "
                    f"Fix: {finding.fix}"
                )
        lines.append("")
    return "\n".join(lines)


def set_class_counts(files_tsv: str | os.PathLike, classes: Sequence[str]) -> dict[str, int]:
    files = pd.read_csv(files_tsv, sep="\t", dtype=str, keep_default_na=False)
    counts = files["class"].value_counts()
    return {name: int(counts.get(name, 0)) for name in classes}


def write_evaluation(
    replicate_dirs: Sequence[str | os.PathLike],
    set_files: Mapping[str, str | os.PathLike],
    classes: Sequence[str],
    *,
    markdown_path: str | os.PathLike,
    tsv_path: str | os.PathLike,
) -> pd.DataFrame:
    """Write evaluation.md and evaluation.tsv; `set_files` maps a set to its files.tsv."""
    table, per_class, findings = evaluate_runs(replicate_dirs, list(set_files), classes)
    counts = {name: set_class_counts(path, classes) for name, path in set_files.items()}
    write_tsv(tsv_path, table)
    write_text(markdown_path, evaluation_markdown(table, per_class, findings, counts))
    return table
