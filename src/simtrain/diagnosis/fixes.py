"""Which findings of a diagnosed run a sibling run can verify, and with what config change.

A finding is verifiable when it is a WARNING or CRITICAL and its fix is one config change
(`Finding.change`) the run does not already have. The plan names one sibling run per finding,
`<run>--fix-<code>`, trained with the run's settings and exactly that change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from simtrain.common.files import write_text
from simtrain.common.runs import apply_change, sibling_name
from simtrain.training.model_params import model_params_problem
from simtrain.training.options import OptionError, training_options

VERIFIABLE_SEVERITIES = ("warning", "critical")


def change_problem(settings: Mapping[str, Any], change: Mapping[str, Any]) -> str | None:
    """Why the run's settings with `change` applied could not train (checked as the plan
    checks a configured run, without Keras), or None."""
    changed = apply_change(settings, change)
    if changed.get("model") == "baseline":
        return "the baseline has no training settings to change"
    try:
        training_options(changed)
    except OptionError as error:
        return str(error)
    problem = model_params_problem(changed["model"], changed.get("model_params") or {})
    return None if problem is None else str(problem)


def plan_fixes(
    run: str, settings: Mapping[str, Any], diagnostics: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The fixes to verify, from each replicate's diagnostics (in replicate order).

    A finding seen in several replicates is verified once, with the change of the first
    replicate that reported it (changes that depend on the curve, such as the best epoch, can
    differ between seeds).
    """
    fixes: dict[str, dict[str, Any]] = {}
    not_verified: dict[str, str] = {}
    for replicate, diagnosis in enumerate(diagnostics):
        for finding in diagnosis.get("findings", []):
            code = finding["code"]
            if finding["severity"] not in VERIFIABLE_SEVERITIES:
                continue
            if code in fixes:
                fixes[code]["found_in_replicates"].append(replicate)
                continue
            change = finding.get("change")
            if change is None:
                not_verified.setdefault(code, f"its fix is not one config change: {finding['fix']}")
            elif apply_change(settings, change) == dict(settings):
                not_verified.setdefault(code, f"the run already has {json.dumps(change)}")
            elif (problem := change_problem(settings, change)) is not None:
                not_verified.setdefault(code, f"{json.dumps(change)} cannot train: {problem}")
            else:
                not_verified.pop(code, None)
                fixes[code] = {
                    "code": code,
                    "severity": finding["severity"],
                    "title": finding["title"],
                    "fix": finding["fix"],
                    "change": change,
                    "sibling": sibling_name(run, code),
                    "found_in_replicates": [replicate],
                }
    return {
        "run": run,
        "fixes": list(fixes.values()),
        "not_verified": [{"code": c, "reason": r} for c, r in not_verified.items()],
    }


def write_fix_plan(
    path: str, run: str, settings: Mapping[str, Any], diagnostics_paths: Sequence[str]
) -> dict[str, Any]:
    diagnostics = []
    for diagnostics_path in diagnostics_paths:
        with open(diagnostics_path, encoding="utf-8") as handle:
            diagnostics.append(json.load(handle))
    plan = plan_fixes(run, settings, diagnostics)
    write_text(path, json.dumps(plan, indent=2, ensure_ascii=False) + "\n")
    return plan


def read_fix_plan(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
