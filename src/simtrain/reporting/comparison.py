"""Compare trained runs: which ones tell the classes apart, and which beat the baseline.

Accuracy comes from each run's final predictions on the full validation set (the same images,
in the same order, for every run), so runs can be compared image by image: a 95 % Wilson
interval says whether a run is above chance, an exact McNemar test on the images where two runs
disagree says whether one is better than the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.common.files import write_text
from simtrain.reporting.run_results import RunResult
from simtrain.reporting.statistics import mcnemar, wilson_interval

BASELINE_MODEL = "baseline"
# Significance level for "beats the baseline"; one pre-planned test per run against one baseline.
ALPHA = 0.05
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
_RUN_COLUMNS = ["run", "model", "train_images", "validation_images", "epochs"]
_ACCURACY_COLUMNS = ["best_val_accuracy", "final_val_accuracy", "final_ci_low", "final_ci_high"]
_OTHER_COLUMNS = ["chance", "majority_rate", "fluctuation_score", "main_finding"]
_COST_COLUMNS = ["images_per_second", "training_seconds", "beats_baseline", "mcnemar_p"]
# "yes" when the run's diagnostics found it UNDER_TRAINED: not above chance is then inconclusive.
COLUMNS = _RUN_COLUMNS + _ACCURACY_COLUMNS + _OTHER_COLUMNS + _COST_COLUMNS + ["under_trained"]
UNDER_TRAINED = "UNDER_TRAINED"


def mcnemar_runs(run_a: RunResult, run_b: RunResult) -> tuple[int, int, float]:
    """McNemar between two runs' final predictions, after checking they scored the same images."""
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
    return mcnemar(run_a.correct, run_b.correct)


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


def _pick_baseline(results: Sequence[RunResult], baseline: str | None) -> RunResult | None:
    if baseline is not None:
        for result in results:
            if result.run == baseline:
                return result
        raise ValueError(f"baseline run {baseline!r} not among {[r.run for r in results]}")
    return next((r for r in results if r.model == BASELINE_MODEL), None)


def compare_runs(results: Sequence[RunResult], baseline: str | None = None) -> pd.DataFrame:
    """One row per run, in input order.

    `baseline` names the reference run; None picks the first run whose model is 'baseline'
    (no reference if there is none).
    """
    if not results:
        raise ValueError("compare_runs needs at least one run")
    names = [r.run for r in results]
    if len(set(names)) != len(names):
        raise ValueError(f"run names must be unique, got {names}")
    reference = _pick_baseline(results, baseline)
    rows = []
    for result in results:
        row = summarise_run(result)
        row.update(beats_baseline="", mcnemar_p=math.nan)
        comparable = (
            reference is not None
            and result is not reference
            and result.predictions is not None
            and reference.predictions is not None
        )
        if comparable:
            better, worse, p_value = mcnemar_runs(result, reference)
            # On the same images, accuracy difference = (better - worse) / n.
            row["beats_baseline"] = "yes" if better > worse and p_value < ALPHA else "no"
            row["mcnemar_p"] = p_value
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("train_images", "validation_images", "epochs"):
        table[column] = pd.array(table[column], dtype="Int64")
    table.attrs["baseline"] = reference.run if reference is not None else None
    return table


def learning_curve(table_or_results: pd.DataFrame | Sequence[RunResult]) -> pd.DataFrame:
    """Points of data-size sweeps: models with runs at >= 2 distinct train_images, sorted."""
    if isinstance(table_or_results, pd.DataFrame):
        table = table_or_results
    else:
        table = pd.DataFrame([summarise_run(r) for r in table_or_results], columns=COLUMNS)
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
        text += f"; beats the baseline (McNemar {_p_text(row['mcnemar_p'])})"
    elif row["beats_baseline"] == "no" and baseline is not None:
        difference = row["final_val_accuracy"] - baseline["final_val_accuracy"]
        significant = row["mcnemar_p"] < ALPHA
        if difference > 0:
            text += "; higher than the baseline, but not significantly"
        elif difference < 0 and significant:
            text += "; significantly worse than the baseline"
        else:
            text += "; not distinguishable from the baseline"
        text += f" (McNemar {_p_text(row['mcnemar_p'])})"
    if row["main_finding"] not in ("", "STABLE"):
        text += f"; learning-curve diagnosis: `{row['main_finding']}` (see its diagnostics)"
    return text + ".", above


def comparison_markdown(table: pd.DataFrame) -> str:
    """The comparison as Markdown: a table and a data-driven 'How to read this'."""
    name = table.attrs.get("baseline")
    if name is None and table["beats_baseline"].isin(["yes", "no"]).any():
        # A table read back from TSV: the baseline is the one model-'baseline' row not tested.
        untested = table[(table["model"] == BASELINE_MODEL) & (table["beats_baseline"] == "")]
        name = untested["run"].iloc[0] if len(untested) else None
    matches = table[table["run"] == name]
    baseline = matches.iloc[0] if len(matches) else None
    header = ["run", "model", "train images", "epochs", "final accuracy [95 % CI]", "best"]
    header += ["chance", "fluctuation", "main finding", "images/s", "seconds", "beats baseline"]
    header += ["McNemar p"]
    lines = ["# Which runs tell the classes apart?", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [f"`{row['run']}`", row["model"], row["train_images"], row["epochs"]]
        cells.append(_accuracy_text(row))
        cells += [row["best_val_accuracy"], max(row["chance"], row["majority_rate"])]
        cells += [row["fluctuation_score"], row["main_finding"], row["images_per_second"]]
        cells += [row["training_seconds"], row["beats_baseline"], row["mcnemar_p"]]
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
        "Final accuracy is measured once, after training, on every validation image; the bracket "
        "is its 95 % Wilson interval, and a run whose interval reaches the chance level (1/number "
        "of classes, or the largest class's share if higher) has not shown it can tell the "
        "classes apart. `best` is the highest per-epoch validation accuracy, picked after the "
        "fact among noisy values, so it overstates how the model does on new images. 'Beats "
        f"baseline' needs a higher final accuracy and an exact McNemar p < {ALPHA} on the images "
        "where exactly one of the two runs is right. A fluctuation score near 1 means the "
        "validation curve wiggles no more than its number of images explains."
    )
    return "\n".join(lines) + "\n"


def write_comparison(table: pd.DataFrame, tsv_path: str | Path, md_path: str | Path) -> None:
    """Write the table as TSV (floats '%.4g') and Markdown, atomically; same table, same bytes."""
    write_text(tsv_path, table.to_csv(sep="\t", index=False, float_format="%.4g"))
    write_text(md_path, comparison_markdown(table))
