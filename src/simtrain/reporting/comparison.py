"""Compare trained runs: which ones tell the classes apart, and which beat the baseline.

Accuracy comes from each replicate's final predictions on the full validation set (the same
images, in the same order, for every run), so runs are compared image by image. A run trained
once gets a Wilson interval and an exact McNemar test, which count the validation images'
sampling only; a run with replicates (`repeats`) gets its mean over seeds, with an interval
and a t test that add the seed-to-seed variance (simtrain.reporting.statistics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.common.files import write_text
from simtrain.config import parse_sibling
from simtrain.reporting.run_results import RunResult
from simtrain.reporting.statistics import (
    accuracy_interval,
    compare_accuracy,
    mcnemar,
    wilson_interval,
)

BASELINE_MODEL = "baseline"
# Significance level for "beats the baseline"; one pre-planned test per run against one baseline.
ALPHA = 0.05
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
_RUN_COLUMNS = ["run", "model", "seeds", "train_images", "validation_images", "epochs"]
_ACCURACY_COLUMNS = ["best_val_accuracy", "final_val_accuracy", "final_ci_low", "final_ci_high"]
_ACCURACY_COLUMNS += ["seed_sd", "seed_accuracies", "interval"]
_OTHER_COLUMNS = ["chance", "majority_rate", "fluctuation_score", "main_finding"]
_COST_COLUMNS = ["images_per_second", "training_seconds", "beats_baseline", "p_value", "test"]
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


def mcnemar_runs(run_a: RunResult, run_b: RunResult) -> tuple[int, int, float]:
    """McNemar between two runs' final predictions, after checking they scored the same images."""
    check_same_images(run_a, run_b)
    return mcnemar(run_a.correct, run_b.correct)


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


def main_finding(diagnostics: dict | None) -> str:
    """Code of the most severe finding; STABLE wins among info-only findings; '' if none."""
    findings = (diagnostics or {}).get("findings") or []
    if not findings:
        return ""
    ranked = [
        (SEVERITY_RANK.get(f.get("severity"), 0), f.get("code") == "STABLE", -i, f["code"])
        for i, f in enumerate(findings)
    ]
    return max(ranked)[3]


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


def summarise_group(group: Sequence[RunResult]) -> dict:
    """One comparison row for a run's replicates: means over seeds, an interval counting both
    the seeds and the validation images (Wilson over images for a single replicate)."""
    rows = [summarise_run(result) for result in group]
    row = dict(rows[0])
    for column in ("best_val_accuracy", "fluctuation_score", "images_per_second"):
        values = [r[column] for r in rows if not math.isnan(r[column])]
        row[column] = float(np.mean(values)) if values else math.nan
    row["training_seconds"] = float(np.mean([r["training_seconds"] for r in rows]))
    ranked = [
        (SEVERITY_RANK.get(_severity(result, r["main_finding"]), 0), r["main_finding"])
        for result, r in zip(group, rows)
    ]
    row["main_finding"] = max(ranked)[1]
    row["under_trained"] = "yes" if any(r["under_trained"] for r in rows) else ""
    row["seeds"] = len(group)
    row["seed_accuracies"] = " ".join(f"{r['final_val_accuracy']:.3f}" for r in rows)
    row["seed_sd"], row["interval"] = math.nan, ""
    correct = correct_matrix(group)
    if correct is not None:
        interval = accuracy_interval(correct)
        row.update(final_val_accuracy=interval.mean, final_ci_low=interval.low)
        row.update(final_ci_high=interval.high, seed_sd=interval.seed_sd)
        row["interval"] = interval.method
    parent, code = parse_sibling(row["run"])
    row["verifies"] = f"{parent}: {code}" if code else ""
    return row


def _severity(result: RunResult, code: str) -> str:
    findings = (result.diagnostics or {}).get("findings") or []
    return next((f.get("severity", "info") for f in findings if f.get("code") == code), "info")


def _pick_baseline(groups: dict[str, list[RunResult]], baseline: str | None) -> str | None:
    if baseline is not None:
        if baseline not in groups:
            raise ValueError(f"baseline run {baseline!r} not among {list(groups)}")
        return baseline
    return next((run for run, group in groups.items() if group[0].model == BASELINE_MODEL), None)


def compare_runs(results: Sequence[RunResult], baseline: str | None = None) -> pd.DataFrame:
    """One row per run (its replicates together), in order of first appearance.

    `baseline` names the reference run; None picks the first run whose model is 'baseline'
    (no reference if there is none). "Beats the baseline": a higher mean final accuracy and
    p < ALPHA in `compare_accuracy` (McNemar for one replicate each, else a t test counting
    the seed-to-seed variance).
    """
    if not results:
        raise ValueError("compare_runs needs at least one run")
    groups = group_replicates(results)
    reference = _pick_baseline(groups, baseline)
    reference_correct = correct_matrix(groups[reference]) if reference is not None else None
    rows = []
    for run, group in groups.items():
        row = summarise_group(group)
        row.update(beats_baseline="", p_value=math.nan, test="")
        correct = correct_matrix(group)
        if run != reference and correct is not None and reference_correct is not None:
            for replicate in group:
                check_same_images(replicate, groups[reference][0])
            outcome = compare_accuracy(correct, reference_correct)
            significant = outcome.difference > 0 and outcome.p_value < ALPHA
            row["beats_baseline"] = "yes" if significant else "no"
            row.update(p_value=outcome.p_value, test=outcome.test)
        rows.append(row)
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
        table = pd.DataFrame([summarise_group(g) for g in groups], columns=COLUMNS)
    columns = ["model", "train_images", "run", "final_val_accuracy", "final_ci_low"]
    columns += ["final_ci_high", "best_val_accuracy", "chance"]
    points = table.dropna(subset=["train_images"])
    sizes = points.groupby("model")["train_images"].nunique()
    points = points[points["model"].isin(sizes[sizes >= 2].index)]
    return points[columns].sort_values(["model", "train_images", "run"], ignore_index=True)


def _fmt(value: object) -> str:
    if value is None or value is pd.NA or value == "" or value != value:  # NaN != NaN
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _accuracy_text(row: pd.Series) -> str:
    """'0.830 [0.780, 0.870]': three decimals resolve the interval of a few thousand images."""
    if math.isnan(row["final_ci_low"]):
        return _fmt(row["final_val_accuracy"])
    values = (row["final_val_accuracy"], row["final_ci_low"], row["final_ci_high"])
    return "{:.3f} [{:.3f}, {:.3f}]".format(*values)


def _p_text(p_value: float) -> str:
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.2g}"


def _test_text(row: pd.Series) -> str:
    return f"{row['test'] or 'test'} {_p_text(row['p_value'])}"


def _reading(row: pd.Series, baseline: pd.Series | None) -> tuple[str, bool | None]:
    """One sentence per run, and whether it is above chance (None: cannot tell)."""
    level, level_name = row["chance"], "chance"
    if row["majority_rate"] > row["chance"]:
        level, level_name = row["majority_rate"], "the majority-class rate"
    text = f"`{row['run']}` ({row['model']}, {_fmt(row['train_images'])} training images): "
    text += f"{_accuracy_text(row)} vs {level_name} {level:.3f}"
    above = None
    if math.isnan(row["final_ci_low"]) or math.isnan(level):
        text += "; no predictions, so not judged against chance"
    else:
        above = bool(row["final_ci_low"] > level)
        if above:
            text += "; above chance"
        elif row.get("under_trained") == "yes":
            # Stopped while still learning: neither "can" nor "cannot" tell the classes apart.
            above = None
            text += "; **inconclusive (under-trained)**: not above chance yet, still learning"
        else:
            text += "; **not distinguishable from chance**"
    if baseline is not None and row["run"] == baseline["run"]:
        text += "; this is the baseline"
    elif row["beats_baseline"] == "yes":
        text += f"; beats the baseline ({_test_text(row)})"
    elif row["beats_baseline"] == "no" and baseline is not None:
        difference = row["final_val_accuracy"] - baseline["final_val_accuracy"]
        significant = row["p_value"] < ALPHA
        if difference > 0:
            text += "; higher than the baseline, but not significantly"
        elif difference < 0 and significant:
            text += "; significantly worse than the baseline"
        else:
            text += "; not distinguishable from the baseline"
        text += f" ({_test_text(row)})"
    if row["main_finding"] not in ("", "STABLE"):
        text += f"; learning-curve diagnosis: `{row['main_finding']}` (see its diagnostics)"
    return text + ".", above


def comparison_markdown(table: pd.DataFrame, verified: pd.DataFrame | None = None) -> str:
    """The comparison as Markdown: a table, a data-driven 'How to read this' and, given the
    verify_fixes tables (with a `run` column), the verified fixes."""
    name = table.attrs.get("baseline")
    if name is None and table["beats_baseline"].isin(["yes", "no"]).any():
        # A table read back from TSV: the baseline is the one model-'baseline' row not tested.
        untested = table[(table["model"] == BASELINE_MODEL) & (table["beats_baseline"] == "")]
        name = untested["run"].iloc[0] if len(untested) else None
    matches = table[table["run"] == name]
    baseline = matches.iloc[0] if len(matches) else None
    header = ["run", "model", "seeds", "train images", "epochs", "final accuracy [95 % CI]"]
    header += ["per seed", "best", "chance", "fluctuation", "main finding", "images/s"]
    header += ["seconds", "beats baseline", "p"]
    lines = ["# Which runs tell the classes apart?", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [f"`{row['run']}`", row["model"], row["seeds"], row["train_images"]]
        cells += [row["epochs"], _accuracy_text(row), row["seed_accuracies"]]
        cells += [row["best_val_accuracy"], max(row["chance"], row["majority_rate"])]
        cells += [row["fluctuation_score"], row["main_finding"], row["images_per_second"]]
        cells += [row["training_seconds"], row["beats_baseline"], row["p_value"]]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    readings = [_reading(row, baseline) for _, row in table.iterrows()]
    above = [f"`{r}`" for r, (_, a) in zip(table["run"], readings) if a]
    not_above = [f"`{r}`" for r, (_, a) in zip(table["run"], readings) if a is False]
    beating = [f"`{r}`" for r, b in zip(table["run"], table["beats_baseline"]) if b == "yes"]
    lines += ["", "## How to read this", ""]
    lines.append(f"**Above chance:** {', '.join(above) or 'none'}. ")
    lines[-1] += f"**Not distinguishable from chance:** {', '.join(not_above) or 'none'}."
    if "under_trained" in table.columns:
        flagged = table["under_trained"].fillna("").eq("yes")
        inconclusive = [
            f"`{r}`" for r, (_, a), u in zip(table["run"], readings, flagged) if u and a is None
        ]
        if inconclusive:
            lines[-1] += f" **Inconclusive (under-trained):** {', '.join(inconclusive)}."
    if baseline is not None:
        lines[-1] += f" **Beat the baseline `{baseline['run']}`:** {', '.join(beating) or 'none'}."
    lines += [""] + [f"- {text}" for text, _ in readings] + [""]
    lines.append(
        "Final accuracy is measured after training on every validation image, for each seed "
        "replicate; with several seeds the table shows their mean, and the bracket is a 95 % "
        "interval that counts both the seed-to-seed (training) variance and the validation "
        "images' sampling (Student t over the seeds). **A run with one seed gets a Wilson "
        "interval over the images only: it ignores training variance**, which one seed cannot "
        "measure. A run whose interval reaches the chance level (1/number of classes, or the "
        "largest class's share if higher) has not shown it can tell the classes apart. `best` "
        "is the highest per-epoch validation accuracy, picked after the fact among noisy "
        "values, so it overstates how the model does on new images. 'Beats baseline' needs a "
        f"higher mean final accuracy and p < {ALPHA}: an exact McNemar test on the images where "
        "exactly one of the two runs is right when both have one seed, else a t test whose "
        "variance adds each run's seed-to-seed variance to the images' (the test's name is in "
        "comparison.tsv). A fluctuation score near 1 means the validation curve wiggles no more "
        "than its number of images explains."
    )
    verifying = table[table["verifies"].fillna("") != ""] if "verifies" in table else table[:0]
    if len(verifying):
        lines += ["", "Runs named `<run>--fix-<finding>` verify a diagnosed fix: "]
        lines[-1] += "see `results/runs/<run>/fixes.md` for confirmed / not confirmed."
    if verified is not None and len(verified):
        lines += ["", "## Verified fixes", ""]
        lines += ["| run | finding | change | verdict | accuracy before → after | p | why |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for _, fix in verified.iterrows():
            accuracy = f"{fix['accuracy_before']:.3f} → {fix['accuracy_after']:.3f}"
            cells = [f"`{fix['run']}`", f"`{fix['finding']}`", f"`{fix['change']}`"]
            cells += [f"**{fix['verdict']}**", accuracy, _fmt(fix["p_value"]), fix["reason"]]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(
    table: pd.DataFrame,
    tsv_path: str | Path,
    md_path: str | Path,
    verified: pd.DataFrame | None = None,
) -> None:
    """Write the table as TSV (floats '%.4g') and Markdown, atomically; same table, same bytes."""
    write_text(tsv_path, table.to_csv(sep="\t", index=False, float_format="%.4g"))
    write_text(md_path, comparison_markdown(table, verified))
