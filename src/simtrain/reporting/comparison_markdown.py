"""comparison.md: the comparison table in Markdown, with a data-driven 'How to read this'.

Reads the table `simtrain.reporting.comparison.compare_runs` builds (or its TSV read back), so
the Markdown and the TSV always say the same thing.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from simtrain.common.files import write_text
from simtrain.reporting.comparison import ALPHA, BASELINE_MODEL


def _fmt(value: object) -> str:
    if value is None or value is pd.NA or value == "" or value != value:  # NaN != NaN
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _accuracy_text(row: pd.Series, prefix: str = "") -> str:
    """'0.830 [0.780, 0.870]': three decimals resolve the interval of a few thousand images.
    prefix "": the decision measure (accuracy, ci_low, ci_high); "final_": the last epoch."""
    value = row[f"{prefix}accuracy" if not prefix else "final_val_accuracy"]
    low, high = row[f"{prefix}ci_low"], row[f"{prefix}ci_high"]
    if math.isnan(low):
        return _fmt(value)
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _p_text(p_value: float) -> str:
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.2g}"


UNKNOWN = "one seed: training variance unknown"


def _decision_p(row: pd.Series) -> float:
    """The p-value the verdict uses: Holm-adjusted where the table has it."""
    adjusted = row.get("p_holm", math.nan)
    return row["p_value"] if adjusted is None or adjusted != adjusted else adjusted


def _test_text(row: pd.Series) -> str:
    text = f"{row['test'] or 'test'} {_p_text(row['p_value'])}"
    if _p_text(_decision_p(row)) != _p_text(row["p_value"]):
        text += f", Holm-adjusted {_p_text(_decision_p(row))}"
    return text


def _one_seed(row: pd.Series) -> bool:
    return row.get("training_variance") == "unknown"


def _reading(row: pd.Series, baseline: pd.Series | None) -> tuple[str, bool | None]:
    """One sentence per run, and whether it is above chance (None: cannot tell)."""
    level, level_name = row["chance"], "chance"
    if row["majority_rate"] > row["chance"]:
        level, level_name = row["majority_rate"], "the majority-class rate"
    text = f"`{row['run']}` ({row['model']}, {_fmt(row['train_images'])} training images): "
    text += f"{_accuracy_text(row)} vs {level_name} {level:.3f}"
    above = None
    # Every verdict on a one-seed run says that another seed could land elsewhere.
    caveat = f" ({UNKNOWN})" if _one_seed(row) else ""
    if math.isnan(row["ci_low"]) or math.isnan(level):
        text += "; no predictions, so not judged against chance"
    else:
        above = bool(row["ci_low"] > level)
        if above:
            text += f"; above chance{caveat}"
        elif row.get("under_trained") == "yes":
            # Stopped while still learning: neither "can" nor "cannot" tell the classes apart.
            above = None
            text += "; **inconclusive (under-trained)**: not above chance yet, still learning"
        else:
            text += f"; **not distinguishable from chance**{caveat}"
    caveat = f"; {UNKNOWN}" if _one_seed(row) else ""
    if baseline is not None and row["run"] == baseline["run"]:
        text += "; this is the baseline"
    elif row["beats_baseline"] == "yes":
        text += f"; beats the baseline ({_test_text(row)}{caveat})"
    elif row["beats_baseline"] == "no" and baseline is not None:
        difference = row["accuracy"] - baseline["accuracy"]
        significant = _decision_p(row) < ALPHA
        if difference > 0:
            text += "; higher than the baseline, but not significantly"
        elif difference < 0 and significant:
            text += "; significantly worse than the baseline"
        else:
            text += "; not distinguishable from the baseline"
        text += f" ({_test_text(row)}{caveat})"
    if row["main_finding"] not in ("", "STABLE"):
        text += f"; learning-curve diagnosis: `{row['main_finding']}` (see its diagnostics)"
    if str(row.get("seed_instability") or "").startswith("yes"):
        cause = str(row["seed_instability"]).removeprefix("yes: ")
        seeds = row["final_seed_accuracies"]
        text += (
            f"; **seed instability**: its seeds' last-epoch accuracies ({seeds}) differ "
            f"beyond what the images explain — {cause}"
        )
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
    header = ["run", "model", "seeds", "train images", "epochs", "accuracy [95 % CI]"]
    header += ["per seed", "last epoch [95 % CI]", "last epochs' mean", "best", "chance"]
    header += ["fluctuation", "main finding", "images/s", "seconds", "training variance"]
    header += ["beats baseline", "p", "p (Holm)"]
    lines = ["# Which runs tell the classes apart?", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [f"`{row['run']}`", row["model"], row["seeds"], row["train_images"]]
        cells += [row["epochs"], _accuracy_text(row), row["seed_accuracies"]]
        cells += [_accuracy_text(row, "final_"), row["last_epochs_val_accuracy"]]
        cells += [row["best_val_accuracy"], max(row["chance"], row["majority_rate"])]
        cells += [row["fluctuation_score"], row["main_finding"], row["images_per_second"]]
        cells += [row["training_seconds"], row.get("training_variance")]
        cells += [row["beats_baseline"], row["p_value"], row.get("p_holm")]
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
        "**Accuracy** — the measure every verdict here decides on — is the final weights' on "
        "every validation image with **precise BatchNorm statistics** (recomputed over "
        "un-augmented training batches after training, as PreciseBN in pycls and detectron2; "
        "for a model without BatchNorm and for the baseline, the final model's): it measures what "
        "the network learned, not where its moving statistics happened to be at the last epoch. "
        "Beside it: the last epoch with the stored statistics, and the mean of the last "
        "epochs' validation accuracy. For each seed replicate; with several seeds the table shows "
        "their mean, and the bracket is a 95 % "
        "interval that counts the seed-to-seed (training) variance and the validation images' "
        "sampling once each (variance components of seeds × images, as a logit-scale score "
        "interval). **A run with one seed gets a Wilson interval over the images only: it "
        "ignores training variance**, which one seed cannot measure (training variance "
        "*unknown*); its verdicts say so. A run whose interval reaches the chance level "
        "(1/number of classes, or the largest class's share if higher) has not shown it can "
        "tell the classes apart. `best` is the highest per-epoch validation accuracy, picked "
        "after the fact among noisy values, so it overstates how the model does on new images. "
        f"'Beats baseline' needs a higher mean accuracy and a Holm-adjusted p < {ALPHA} "
        "over all the table's baseline tests (p is each test's own): an exact McNemar test on "
        "the images where exactly one of the two runs is right when both have one seed (two "
        "seeds of one equally good network differ 'significantly' this way about a third of the "
        "time when seeds vary as much as the default config's), a t test on the seed-by-seed "
        "differences when both runs were trained with the same seeds, else both runs' intervals "
        "combined (the test's name is in comparison.tsv). A fluctuation score near 1 means the "
        "validation curve moves no more than validation sampling and ordinary training "
        "movement explain; the main finding of a curve beyond that is its cause. **Seed "
        "instability**: the seeds' last-epoch accuracies differ beyond what the images explain "
        "(an F test at 0.01 and a spread of at least 3 points), with the cause when precise "
        "BatchNorm statistics remove it."
    )
    verifying = table[table["verifies"].fillna("") != ""] if "verifies" in table else table[:0]
    if len(verifying):
        lines += ["", "Runs named `<run>--fix-<finding>` verify a diagnosed fix: "]
        lines[-1] += "see `results/runs/<run>/fixes.md` for confirmed / not confirmed."
    if verified is not None and len(verified):
        lines += ["", "## Verified fixes", ""]
        lines += [
            "Each fix's symptom test is Holm-adjusted together with the baseline tests above "
            "(one family for this report), so a verdict here can be stricter than in the run's "
            "fixes.md.",
            "",
            "| run | finding | change | verdict | symptom before → after | p (Holm) "
            "| accuracy before → after | why |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, fix in verified.iterrows():
            symptom = f"{fix['symptom']}: {_fmt(fix['symptom_before'])} → "
            symptom += _fmt(fix["symptom_after"])
            accuracy = f"{fix['accuracy_before']:.3f} → {fix['accuracy_after']:.3f}"
            cells = [f"`{fix['run']}`", f"`{fix['finding']}`", f"`{fix['change']}`"]
            cells += [f"**{fix['verdict']}**", symptom, _fmt(fix["symptom_p_holm"]), accuracy]
            cells += [fix["reason"]]
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
