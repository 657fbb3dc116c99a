"""Was a diagnosed fix right? A run against its sibling trained with exactly the fix's change.

The sibling shares the run's data, validation images and replicate seeds, so the comparison is
paired image by image (and seed by seed). A fix is *confirmed* when, in the sibling,

1. the finding is gone (no WARNING/CRITICAL of that code in any replicate),
2. the symptom the finding is about improved (`SYMPTOMS`), and
3. the final accuracy is not significantly lower (two-sided test, `ALPHA`).

For PARTIAL_EPOCH or PARTIAL_VALIDATION the change removes the very setting the check looks
at, so (1) holds by construction; (2) is what makes the verdict an experiment.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simtrain.common.files import write_text
from simtrain.reporting.comparison import correct_matrix, summarise_group
from simtrain.reporting.plots import plt, save_figure
from simtrain.reporting.run_results import RunResult
from simtrain.reporting.statistics import compare_accuracy

ALPHA = 0.05
# What each finding says is wrong, as a measurable symptom of the run:
# accuracy: the final accuracy on the same images rises significantly (paired test);
# curve_movement: the validation curve moves less from epoch to epoch (mean |Δ val_accuracy|);
# final_val_loss: the last epoch's validation loss is lower;
# finding: the finding itself (a spike or NaN check) is the symptom.
SYMPTOMS = {
    "PARTIAL_EPOCH": "accuracy",
    "AUGMENTATION_SHIFT": "accuracy",
    "BATCHNORM_STATISTICS": "accuracy",
    "UNDER_TRAINED": "accuracy",
    "PARTIAL_VALIDATION": "curve_movement",
    "OVERFITTING": "final_val_loss",
}
COLUMNS = [
    "finding",
    "severity",
    "sibling",
    "change",
    "verdict",
    "reason",
    "finding_in_sibling",
    "symptom",
    "symptom_before",
    "symptom_after",
    "accuracy_before",
    "ci_before",
    "accuracy_after",
    "ci_after",
    "accuracy_difference",
    "test",
    "p_value",
    "fluctuation_before",
    "fluctuation_after",
]


@dataclass(frozen=True)
class RunGroup:
    """A run's replicates, in replicate order."""

    run: str
    replicates: Sequence[RunResult]

    def flagged(self, code: str) -> list[int]:
        """Replicates whose diagnostics report `code` as a WARNING or CRITICAL."""
        return [
            r.replicate
            for r in self.replicates
            if any(
                f["code"] == code and f["severity"] in ("warning", "critical")
                for f in (r.diagnostics or {}).get("findings", [])
            )
        ]

    def mean(self, values: Sequence[float | None]) -> float:
        finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        return float(np.mean(finite)) if finite else math.nan

    def symptom(self, symptom: str) -> float:
        histories = [r.history for r in self.replicates if r.history is not None]
        if symptom == "curve_movement":
            return self.mean([h["val_accuracy"].diff().abs().mean() for h in histories])
        if symptom == "final_val_loss":
            return self.mean([h["val_loss"].iloc[-1] for h in histories if len(h)])
        return math.nan


def verify_fix(fix: Mapping, before: RunGroup, after: RunGroup) -> dict:
    """One row of the verification table: the evidence, and confirmed / not confirmed."""
    code, symptom = fix["code"], SYMPTOMS.get(fix["code"], "finding")
    row: dict = {
        "finding": code,
        "severity": fix["severity"],
        "sibling": after.run,
        "change": json.dumps(fix["change"]),
        "symptom": symptom,
    }
    still = after.flagged(code)
    row["finding_in_sibling"] = f"still in seeds {still}" if still else "gone"
    correct = {}
    for name, group in (("before", before), ("after", after)):
        correct[name] = correct_matrix(group.replicates)
        if correct[name] is None:
            raise ValueError(f"{group.run}: every replicate needs predictions.tsv")
        # The comparison table's numbers for the run: mean accuracy, interval, fluctuation.
        summary = summarise_group(group.replicates, correct[name])
        row[f"accuracy_{name}"] = summary["final_val_accuracy"]
        row[f"ci_{name}"] = f"[{summary['final_ci_low']:.3f}, {summary['final_ci_high']:.3f}]"
        row[f"fluctuation_{name}"] = summary["fluctuation_score"]
    test = compare_accuracy(correct["after"], correct["before"])
    row.update(accuracy_difference=test.difference, test=test.test, p_value=test.p_value)
    worse = test.difference < 0 and test.p_value < ALPHA
    if symptom == "accuracy":
        row["symptom_before"], row["symptom_after"] = row["accuracy_before"], row["accuracy_after"]
        improved = test.difference > 0 and test.p_value < ALPHA
        effect = f"{test.difference:+.3f}, p = {test.p_value:.2g}"
        claim = f"final accuracy rose significantly ({effect})"
        failed = f"final accuracy did not rise significantly ({effect})"
    elif symptom == "finding":
        row["symptom_before"], row["symptom_after"] = len(before.flagged(code)), len(still)
        improved, claim, failed = not still, "the finding is gone", "the finding remains"
    else:
        row["symptom_before"] = before.symptom(symptom)
        row["symptom_after"] = after.symptom(symptom)
        improved = row["symptom_after"] < row["symptom_before"]
        measure = symptom.replace("_", " ")
        values = f"{row['symptom_before']:.3g} → {row['symptom_after']:.3g}"
        claim, failed = f"{measure} fell ({values})", f"{measure} did not fall ({values})"
    confirmed = not still and improved and not worse
    row["verdict"] = "confirmed" if confirmed else "not confirmed"
    if confirmed:
        row["reason"] = f"the finding is gone and {claim}"
    else:
        failures = [f"the finding is {row['finding_in_sibling']}"] if still else []
        failures += [] if improved else [failed]
        failures += [f"accuracy fell significantly (p = {test.p_value:.2g})"] if worse else []
        row["reason"] = "; ".join(failures)
    return row


def verify_fixes(plan: Mapping, groups: Mapping[str, RunGroup]) -> pd.DataFrame:
    """The verification table for one run's fix plan; `groups` holds the run and its siblings."""
    before = groups[plan["run"]]
    rows = [verify_fix(fix, before, groups[fix["sibling"]]) for fix in plan["fixes"]]
    return pd.DataFrame(rows, columns=COLUMNS)


def _number(value: object) -> str:
    return "–" if not isinstance(value, int | float) or value != value else f"{value:.3g}"


def fixes_markdown(plan: Mapping, table: pd.DataFrame) -> str:
    """fixes.md: one section per finding, then the findings that could not be verified."""
    run = plan["run"]
    lines = [f"# Verified fixes for run `{run}`", ""]
    if table.empty:
        lines += ["No WARNING or CRITICAL finding had a fix that is one config change.", ""]
    for _, row in table.iterrows():
        lines += [
            f"## `{row['finding']}`: **{row['verdict']}**",
            "",
            f"Sibling run `{row['sibling']}` = `{run}` with `{row['change']}`. {row['reason']}.",
            "",
            "| | before | after |",
            "|---|---|---|",
            f"| final accuracy [95 % CI] | {row['accuracy_before']:.3f} {row['ci_before']} "
            f"| {row['accuracy_after']:.3f} {row['ci_after']} |",
            f"| fluctuation score | {_number(row['fluctuation_before'])} "
            f"| {_number(row['fluctuation_after'])} |",
            f"| symptom: {row['symptom']} | {_number(row['symptom_before'])} "
            f"| {_number(row['symptom_after'])} |",
            f"| finding | present | {row['finding_in_sibling']} |",
            "",
            f"Paired test on the same validation images ({row['test']}): accuracy difference "
            f"{row['accuracy_difference']:+.3f}, p = {row['p_value']:.2g}.",
            "",
        ]
    if plan["not_verified"]:
        lines += ["## Not verified", ""]
        lines += [f"- `{item['code']}`: {item['reason']}" for item in plan["not_verified"]]
        lines += [""]
    lines += [
        "A fix is confirmed when the sibling no longer shows the finding, the symptom it names "
        f"improved, and the final accuracy is not significantly lower (α = {ALPHA}).",
        "",
    ]
    return "\n".join(lines)


def write_verification(plan: Mapping, table: pd.DataFrame, markdown_path, tsv_path) -> None:
    write_text(tsv_path, table.to_csv(sep="\t", index=False, float_format="%.4g"))
    write_text(markdown_path, fixes_markdown(plan, table))


def plot_before_after(
    plan: Mapping, groups: Mapping[str, RunGroup], path: str | os.PathLike
) -> None:
    """Per fix, the run's validation curves (left) beside its sibling's (right), each seed a
    line, on shared axes: what the fix changed, at a glance."""
    fixes = plan["fixes"]
    if not fixes:
        figure, axis = plt.subplots(figsize=(6, 1.5))
        axis.text(0.5, 0.5, "no fix to verify", ha="center", va="center")
        axis.set_axis_off()
        save_figure(figure, path)
        return
    figure, axes = plt.subplots(
        len(fixes), 2, figsize=(10, 3.2 * len(fixes)), sharey=True, squeeze=False
    )
    for row, fix in enumerate(fixes):
        for column, name in enumerate((plan["run"], fix["sibling"])):
            axis = axes[row, column]
            for number, result in enumerate(groups[name].replicates):
                history = result.history
                if history is None or not len(history):
                    continue
                for metric, style in (("val_accuracy", "-"), ("accuracy", ":")):
                    label = f"{'validation' if metric.startswith('val') else 'training'}"
                    axis.plot(
                        history["epoch"],
                        history[metric],
                        style,
                        color=f"C{number % 10}",
                        marker="o" if style == "-" else None,
                        markersize=3,
                        label=f"{label}, seed-{result.replicate}",
                    )
            side = "before" if column == 0 else f"after: {fix['code']} fix"
            axis.set_title(f"{side}\n{name}", fontsize="small")
            axis.set_xlabel("epoch")
            axis.set_ylim(0, 1.02)
            axis.grid(alpha=0.3)
        axes[row, 0].set_ylabel("accuracy")
        axes[row, 1].legend(loc="lower right", fontsize="x-small")
    save_figure(figure, path)
