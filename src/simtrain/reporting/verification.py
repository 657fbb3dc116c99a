"""Was a diagnosed fix right? A run against its sibling trained with exactly the fix's change.

The sibling shares the run's data, validation images and replicate seeds, so the comparison is
paired image by image and seed by seed. A fix is

- **inconclusive** when the sibling did not learn (its accuracy's interval reaches chance, or it
  is UNDER_TRAINED): a run that learns nothing trivially loses every symptom;
- **confirmed** when, in the sibling, (1) the finding is gone (no WARNING/CRITICAL of its code in
  any replicate), (2) the symptom the finding names improved, by its own one-sided test
  (`symptoms`), significant after Holm's correction over the plan's fixes, and (3) accuracy is
  non-inferior: it fell by less than NON_INFERIORITY_MARGIN (a one-sided test that shows it,
  not "no significant drop");
- **not confirmed** otherwise, with the reasons.

For PARTIAL_EPOCH or PARTIAL_VALIDATION the change removes the very setting the check looks
at, so (1) holds by construction; (2) and (3) are what make the verdict an experiment. The
comparison (comparison.md) adjusts these tests again over all of its tests.
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
from simtrain.reporting.comparison import correct_matrix, replicate_seeds, summarise_group
from simtrain.reporting.plots import plt, save_figure
from simtrain.reporting.run_results import RunResult
from simtrain.reporting.statistics import holm, non_inferiority
from simtrain.reporting.symptoms import SYMPTOMS, cross_fitted, symptom_test
from simtrain.reporting.variance_components import pair_by_seed

ALPHA = 0.05
# The accuracy a fix may cost and still count: five points. On the 160-200 validation images of
# the default config and the benchmark, the paired difference's standard error is 2-3 points,
# so a 2-point margin could be shown only by fixes that gain accuracy.
NON_INFERIORITY_MARGIN = 0.05
COLUMNS = [
    "finding",
    "severity",
    "sibling",
    "change",
    "verdict",
    "reason",
    "finding_in_sibling",
    "learned",
    "symptom",
    "symptom_before",
    "symptom_after",
    "symptom_test",
    "symptom_p",
    "symptom_p_holm",
    "accuracy_before",
    "ci_before",
    "accuracy_after",
    "ci_after",
    "non_inferiority_margin",
    "non_inferiority_lower_bound",
    "non_inferiority_p",
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


def _paired(before: RunGroup, after: RunGroup) -> tuple[list[int], list[int]] | None:
    seeds_b, seeds_a = replicate_seeds(before.replicates), replicate_seeds(after.replicates)
    return None if seeds_b is None or seeds_a is None else pair_by_seed(seeds_a, seeds_b)


def _non_inferior(code: str, before: RunGroup, after: RunGroup, change=None):
    """Non-inferiority of the sibling's accuracy (held out for OVERFITTING's early stop)."""
    if code == "OVERFITTING" and "early_stopping" in (change or {}):
        correct_a = np.stack([cross_fitted(r.run_dir) for r in after.replicates])
        correct_b = np.stack([r.correct for r in before.replicates])
    else:
        correct_a, correct_b = correct_matrix(after.replicates), correct_matrix(before.replicates)
    pairs = _paired(before, after)
    if pairs is not None and len(pairs[0]) > 1:
        return non_inferiority(
            correct_a[pairs[0]], correct_b[pairs[1]], NON_INFERIORITY_MARGIN, paired=True
        )
    return non_inferiority(correct_a, correct_b, NON_INFERIORITY_MARGIN)


def evidence_row(fix: Mapping, before: RunGroup, after: RunGroup) -> dict:
    """One row of the verification table with every measurement; `decide` adds the verdict."""
    code = fix["code"]
    row: dict = {
        "finding": code,
        "severity": fix["severity"],
        "sibling": after.run,
        "change": json.dumps(fix["change"]),
    }
    still = after.flagged(code)
    row["finding_in_sibling"] = f"still in seeds {still}" if still else "gone"
    summaries = {}
    for name, group in (("before", before), ("after", after)):
        correct = correct_matrix(group.replicates)
        if correct is None:
            raise ValueError(f"{group.run}: every replicate needs predictions.tsv")
        summaries[name] = summarise_group(
            group.replicates, correct, correct_matrix(group.replicates, "final")
        )
        summary = summaries[name]
        row[f"accuracy_{name}"] = summary["accuracy"]
        row[f"ci_{name}"] = f"[{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"
        row[f"fluctuation_{name}"] = summary["fluctuation_score"]
    after_summary = summaries["after"]
    level = max(after_summary["chance"], after_summary["majority_rate"])
    row["learned"] = (
        "no: under-trained"
        if after.flagged("UNDER_TRAINED")
        else "yes"
        if after_summary["ci_low"] > level
        else "no: accuracy not above chance"
    )
    test = symptom_test(code, before.replicates, after.replicates, fix.get("change"))
    row["symptom"] = SYMPTOMS.get(code, "none measurable")
    if test is not None:
        row.update(symptom=test.symptom, symptom_before=test.before, symptom_after=test.after)
        row.update(symptom_test=test.test, symptom_p=test.p_value)
    inferiority = _non_inferior(code, before, after, fix.get("change"))
    row.update(
        non_inferiority_margin=inferiority.margin,
        non_inferiority_lower_bound=inferiority.lower_bound,
        non_inferiority_p=inferiority.p_value,
    )
    return row


def decide(row: Mapping, symptom_p_holm: float) -> tuple[str, str]:
    """(verdict, reason) of one fix, its symptom's p-value adjusted over its family."""
    if row["learned"] != "yes":
        return "inconclusive", f"the sibling did not learn ({row['learned'].removeprefix('no: ')})"
    failures = []
    if row["finding_in_sibling"] != "gone":
        failures.append(f"the finding is {row['finding_in_sibling']}")
    symptom = row["symptom"]
    p_value = symptom_p_holm
    if p_value is None or p_value != p_value:
        failures.append(f"its symptom ({symptom}) could not be measured")
    elif p_value >= ALPHA:
        failures.append(
            f"{symptom} did not improve significantly ({_number(row.get('symptom_before'))} → "
            f"{_number(row.get('symptom_after'))}, Holm-adjusted p = {p_value:.2g})"
        )
    if not row["non_inferiority_p"] < ALPHA:
        failures.append(
            f"accuracy not shown within {row['non_inferiority_margin']:g} of before "
            f"(lower bound {row['non_inferiority_lower_bound']:+.3f})"
        )
    if failures:
        return "not confirmed", "; ".join(failures)
    return "confirmed", (
        f"the finding is gone, {symptom} improved ({_number(row['symptom_before'])} → "
        f"{_number(row['symptom_after'])}, Holm-adjusted p = {p_value:.2g}) and accuracy fell "
        f"by less than {row['non_inferiority_margin']:g} (lower bound "
        f"{row['non_inferiority_lower_bound']:+.3f})"
    )


def verify_fixes(plan: Mapping, groups: Mapping[str, RunGroup]) -> pd.DataFrame:
    """The verification table for one run's fix plan; `groups` holds the run and its siblings.
    The symptom tests are Holm-corrected over the plan's fixes."""
    before = groups[plan["run"]]
    rows = [evidence_row(fix, before, groups[fix["sibling"]]) for fix in plan["fixes"]]
    adjusted = holm([row.get("symptom_p", math.nan) for row in rows])
    for row, p_value in zip(rows, adjusted):
        row["symptom_p_holm"] = p_value
        row["verdict"], row["reason"] = decide(row, p_value)
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
            f"| accuracy (precise BN) [95 % CI] | {row['accuracy_before']:.3f} "
            f"{row['ci_before']} | {row['accuracy_after']:.3f} {row['ci_after']} |",
            f"| fluctuation score | {_number(row['fluctuation_before'])} "
            f"| {_number(row['fluctuation_after'])} |",
            f"| symptom: {row['symptom']} | {_number(row['symptom_before'])} "
            f"| {_number(row['symptom_after'])} |",
            f"| finding | present | {row['finding_in_sibling']} |",
            f"| learned (above chance, not under-trained) | | {row['learned']} |",
            "",
            f"Symptom test: {row['symptom_test'] or '–'}, one-sided p = "
            f"{_number(row['symptom_p'])} (Holm over this run's fixes: "
            f"{_number(row['symptom_p_holm'])}). Non-inferiority of accuracy (margin "
            f"{row['non_inferiority_margin']:g}): lower bound of the difference "
            f"{row['non_inferiority_lower_bound']:+.3f}, p = {_number(row['non_inferiority_p'])}.",
            "",
        ]
    if plan["not_verified"]:
        lines += ["## Not verified", ""]
        lines += [f"- `{item['code']}`: {item['reason']}" for item in plan["not_verified"]]
        lines += [""]
    lines += [
        "A fix is confirmed when the sibling learned, no longer shows the finding, improved the "
        "symptom the finding names (its own one-sided test, Holm-adjusted over this run's "
        f"fixes) and kept its accuracy within {NON_INFERIORITY_MARGIN:g} of the run's "
        f"(non-inferiority), each at α = {ALPHA}; inconclusive when the sibling did not learn. "
        "comparison.md adjusts the symptom tests again over all of its tests.",
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
