"""Scoring the real-run diagnosis benchmark: diagnose every trained run, tabulate the rates.

Works with the current library and with an older checkout's (PYTHONPATH=<checkout>/src),
whose diagnostics have no `fluctuation` decomposition: then the main finding is the most
severe one, as the comparison named it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from diagnosis_real_runs import ARITHMETIC, INFERRED, SCENARIOS

SEVERITY = {"info": 0, "warning": 1, "critical": 2}


def main_cause(diagnostics: dict) -> str:
    """The run's main finding as the comparison names it (the library's own rule); for an
    older library without the fluctuation cause, the most severe finding (the first of
    equals), as that comparison did."""
    from simtrain.reporting import comparison

    if hasattr(comparison, "group_main_finding"):
        return comparison.main_finding(diagnostics)
    fluctuation = diagnostics.get("fluctuation")
    if fluctuation and fluctuation.get("beyond_noise") and fluctuation.get("cause"):
        return fluctuation["cause"]
    findings = [f for f in diagnostics["findings"] if f["severity"] != "info"]
    if not findings:
        return ""
    return max(findings, key=lambda f: (SEVERITY[f["severity"]], -findings.index(f)))["code"]


def named_epoch(diagnostics: dict) -> int | None:
    fluctuation = diagnostics.get("fluctuation")
    if fluctuation is not None:
        return fluctuation.get("glitch_epoch")
    for finding in diagnostics["findings"]:
        if finding["code"] == "VALIDATION_SAMPLING_NOISE" and finding["severity"] != "info":
            return finding["evidence"].get("glitch_epoch")
    return None


def diagnose_once(work: Path, label: str, run: str) -> Path:
    """Diagnose the trained run in `work` with the importable library, unless this label's
    diagnostics are there already; their JSON file."""
    from simtrain.diagnosis.run_dir import diagnose_run_dir

    target = work / f"diagnostics-{label}.json"
    if not target.exists():
        info = json.loads((work / "scenario.json").read_text())
        diagnose_run_dir(
            work / "run",
            run=run,
            settings=info["settings"],
            train_dir=work / "packed" / "train",
            validation_dir=work / "packed" / "validation",
            json_path=target,
            markdown_path=work / f"diagnostics-{label}.md",
            search_path=Path(__file__).parent,
        )
    return target


def _diagnose_task(work: Path, label: str) -> dict:
    """Diagnose one trained run (once per label) and read what it said."""
    info = json.loads((work / "scenario.json").read_text())
    diagnostics = json.loads(diagnose_once(work, label, run="scenario").read_text())
    flagged = sorted({f["code"] for f in diagnostics["findings"] if f["severity"] != "info"})
    glitch = info["glitch_epoch"]
    return {
        "scenario": info["scenario"],
        "seed": info["seed"],
        "symptom": info["symptom"]["present"],
        "flagged": flagged,
        "main": main_cause(diagnostics),
        "epoch_named": named_epoch(diagnostics) == glitch if glitch else None,
    }


def diagnose_all(out: Path, label: str, jobs: int = 1) -> pd.DataFrame:
    """Diagnose every trained run under `out` with the importable library; one row per run."""
    from diagnosis_real_runs import workers

    works = sorted(p.parent for p in out.glob("*/seed-*/scenario.json"))
    with workers(jobs) as pool:
        rows = list(pool.map(_diagnose_task, works, [label] * len(works)))
    return pd.DataFrame(rows)


def score(runs: pd.DataFrame, rate, rate_text) -> dict[str, pd.DataFrame]:
    """Per scenario: inferred causes, config arithmetic and clean runs, rates with intervals."""
    tables: dict[str, list] = {"inferred": [], "arithmetic": [], "clean": []}
    summary: dict[str, dict] = {}
    for scenario in SCENARIOS:
        group = runs[runs["scenario"] == scenario.name]
        if group.empty:
            continue
        present = group[group["symptom"]]
        expected = set(scenario.expected)
        row = {
            "scenario": scenario.name,
            "expected": ", ".join(scenario.expected) or "none",
            "symptom present": f"{len(present)}/{len(group)}",
        }
        if scenario.kind == "clean":
            warned = int(present["flagged"].map(bool).sum())
            summary[scenario.name] = {"WARNING": rate(warned, len(present))}
            row["WARNING"] = rate_text(summary[scenario.name]["WARNING"])
            row["codes"] = ", ".join(sorted({c for f in present["flagged"] for c in f})) or "–"
            tables["clean"].append(row)
            continue
        flagged = [set(f) for f in present["flagged"]]
        main = list(present["main"])
        detected = sum(expected <= f for f in flagged)
        measures = {"detected": rate(detected, len(present))}
        if scenario.kind == "inferred":
            named = sum(m in expected for m in main)  # any injected cause is the cause
            wrong = sum(m in INFERRED and m not in expected for m in main)
            other = sum(bool((f & set(INFERRED)) - expected) for f in flagged)
            measures |= {
                "named as the cause": rate(named, len(present)),
                "wrong cause named": rate(wrong, len(present)),
                "other inferred code raised": rate(other, len(present)),
            }
            if scenario.injection == "glitch":
                hits = int(present["epoch_named"].fillna(False).astype(bool).sum())
                measures["epoch named"] = rate(hits, len(present))
        row |= {name: rate_text(value) for name, value in measures.items()}
        tables[scenario.kind].append(row)
        summary[scenario.name] = measures
    frames = {name: pd.DataFrame(rows).fillna("") for name, rows in tables.items() if rows}
    return frames, summary


def clean_total(runs: pd.DataFrame, rate) -> dict:
    names = [s.name for s in SCENARIOS if s.kind == "clean"]
    clean = runs[runs["scenario"].isin(names) & runs["symptom"]]
    return rate(int(clean["flagged"].map(bool).sum()), len(clean))


__all__ = ["ARITHMETIC", "diagnose_all", "score", "clean_total", "main_cause"]
