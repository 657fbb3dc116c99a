"""Do verified fixes come out right, and can they come out wrong? Positive and negative controls.

    uv run python benchmarks/fix_verification.py --runs runs/ --out fixes/ [--seeds 10]

For each finding with a fix that is one config change, the real-run benchmark's scenario that
produces it (`diagnosis_real_runs`, trained into --runs by `diagnosis_accuracy.py real train`;
missing seeds are trained here) is run again twice with the same seed: once with the fix the
diagnosis proposes (**right**) and once with a deliberately wrong change that leaves the cause
in place (**wrong**; e.g. a learning-rate change for shuffled partial validation). Both
siblings are diagnosed and verified against the run exactly as the workflow's verify_fixes
does (one sibling per plan, so neither's test corrects the other's), one seed at a time.

Targets (issue 21): a wrong fix is *not confirmed* in >= 90 % of runs, a right fix confirmed
in >= 80 %; each rate with its Wilson 95 % interval. Rates also go to results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from common import add_results_argument, append_result
from diagnosis_accuracy import markdown, rate, rate_text
from diagnosis_real_runs import (
    CLEAN,
    SCENARIOS,
    _seeds,
    slug,
    train_scenario,
    workers,
)
from diagnosis_real_scoring import diagnose_once

LABEL = "verification"


@dataclass(frozen=True)
class Control:
    finding: str
    scenario: str  # the real-run benchmark scenario that produces the finding
    right: dict  # the change the diagnosis proposes
    wrong: dict  # a change that leaves the cause in place


CONTROLS = [
    Control("PARTIAL_EPOCH", "partial epochs", {"steps_per_epoch": None}, {"learning_rate": 0.001}),
    Control(
        "PARTIAL_VALIDATION",
        "shuffled partial validation",
        {"validation_steps": None},
        {"learning_rate": 0.001},
    ),
    Control(
        "BATCHNORM_STATISTICS",
        "BatchNorm momentum 0.999",
        {"batchnorm_momentum": 0.9},
        {"label_smoothing": 0.1},
    ),
    Control(
        "AUGMENTATION_SHIFT",
        "bilinear warp",
        {"augmentation": {"interpolation": "nearest"}},
        {"label_smoothing": 0.1},
    ),
    Control(
        "UNSTABLE_OPTIMIZATION",
        "RMSprop 0.003 without BatchNorm",
        {"lr_schedule": {"kind": "cosine"}},
        {"label_smoothing": 0.1},
    ),
    Control(
        "OVERFITTING",
        "16 training images, 40 epochs",
        {"train_images": None},
        {"label_smoothing": 0.1},
    ),
    Control("UNDER_TRAINED", "2 epochs", {"epochs": 10}, {"label_smoothing": 0.1}),
]


def _sibling_task(control: Control, side: str, base: Path, work: Path, threads: int) -> dict:
    """Train and diagnose one sibling (the base run's scenario with the `side` change)."""
    from simtrain.common.runs import apply_change
    from simtrain.diagnosis.run_dir import diagnose_run_dir

    info = json.loads((base / "scenario.json").read_text())
    scenario = next(s for s in SCENARIOS if s.name == control.scenario)
    change = control.right if side == "right" else control.wrong
    changed = apply_change({**CLEAN, **scenario.settings}, change)
    sibling = replace(scenario, settings=changed, symptom="none", corrupt=None)
    if not (work / "scenario.json").exists():
        shutil.rmtree(work, ignore_errors=True)
        train_scenario(sibling, base / "packed", work, info["seed"], threads, copy_data=False)
    target = work / f"diagnostics-{LABEL}.json"
    if not target.exists():
        diagnose_run_dir(
            work / "run",
            run="sibling",
            settings={**changed, "seed": info["seed"]},
            train_dir=base / "packed" / "train",
            validation_dir=base / "packed" / "validation",
            json_path=target,
            markdown_path=work / f"diagnostics-{LABEL}.md",
            search_path=Path(__file__).parent,
        )
    return {"finding": control.finding, "side": side, "seed": info["seed"], "work": str(work)}


def verdict(control: Control, base: Path, sibling: Path) -> dict:
    """The verification table's row for one sibling of one seed."""
    from simtrain.reporting.run_results import load_run
    from simtrain.reporting.verification import RunGroup, verify_fixes

    def group(name: str, work: Path, diagnostics: str) -> RunGroup:
        shutil.copyfile(work / diagnostics, work / "run" / "diagnostics.json")
        return RunGroup(name, [load_run(work / "run")])

    before = group("run", base, "diagnostics-verification-base.json")
    after = group("sibling", sibling, f"diagnostics-{LABEL}.json")
    change = control.right if sibling.parent.name == "right" else control.wrong
    fix = {"code": control.finding, "severity": "warning", "change": change, "sibling": "sibling"}
    plan = {"run": "run", "fixes": [fix], "not_verified": []}
    row = verify_fixes(plan, {"run": before, "sibling": after}).iloc[0]
    return {"verdict": row["verdict"], "reason": row["reason"]}


def run(arguments: argparse.Namespace) -> None:
    started = time.perf_counter()
    seeds = _seeds(arguments.seeds)
    names = [c.scenario for c in CONTROLS]
    from diagnosis_real_runs import train_all

    train_all(arguments.runs, seeds, names, arguments.jobs)  # the runs, where missing
    tasks = []
    for control in CONTROLS:
        for seed in seeds:
            base = arguments.runs / slug(control.scenario) / f"seed-{seed}"
            for side in ("right", "wrong"):
                work = arguments.out / slug(control.finding) / side / f"seed-{seed}"
                tasks.append((control, side, base, work, 1 if arguments.jobs > 1 else 2))
    with workers(arguments.jobs) as pool:
        list(pool.map(_sibling_task, *zip(*tasks)))
    rows = []
    for control in CONTROLS:
        for seed in seeds:
            base = arguments.runs / slug(control.scenario) / f"seed-{seed}"
            _diagnose_base(control, base)
            for side in ("right", "wrong"):
                work = arguments.out / slug(control.finding) / side / f"seed-{seed}"
                rows.append(
                    {
                        "finding": control.finding,
                        "side": side,
                        "seed": seed,
                        **verdict(control, base, work),
                    }
                )
    table = pd.DataFrame(rows)
    table.to_csv(arguments.out / "verdicts.tsv", sep="\t", index=False)
    summary, lines = {}, []
    for finding, group in table.groupby("finding", sort=False):
        right, wrong = group[group["side"] == "right"], group[group["side"] == "wrong"]
        confirmed = rate(int((right["verdict"] == "confirmed").sum()), len(right))
        rejected = rate(int((wrong["verdict"] != "confirmed").sum()), len(wrong))
        inconclusive = int((group["verdict"] == "inconclusive").sum())
        summary[finding] = {"right confirmed": confirmed, "wrong not confirmed": rejected}
        lines.append(
            {
                "finding": finding,
                "right fix confirmed": rate_text(confirmed),
                "wrong fix not confirmed": rate_text(rejected),
                "inconclusive (either)": inconclusive,
            }
        )
    all_right = table[table["side"] == "right"]
    all_wrong = table[table["side"] == "wrong"]
    total = {
        "right confirmed": rate(int((all_right["verdict"] == "confirmed").sum()), len(all_right)),
        "wrong not confirmed": rate(
            int((all_wrong["verdict"] != "confirmed").sum()), len(all_wrong)
        ),
    }
    lines.append(
        {
            "finding": "all",
            "right fix confirmed": rate_text(total["right confirmed"]),
            "wrong fix not confirmed": rate_text(total["wrong not confirmed"]),
            "inconclusive (either)": int((table["verdict"] == "inconclusive").sum()),
        }
    )
    print(f"### Fix verification: positive and negative controls ({len(seeds)} seeds)\n")
    print(markdown(pd.DataFrame(lines)))
    print(f"\n{time.perf_counter() - started:.0f} s")
    if arguments.results is not None:
        append_result(
            arguments.results,
            benchmark="fix_verification",
            parameters={"seeds": len(seeds), "runs": str(arguments.runs)},
            results=summary | {"all": total},
            verdicts={
                "wrong fixes not confirmed >= 90 %": "PASS"
                if total["wrong not confirmed"]["rate"] >= 0.9
                else "MISS",
                "right fixes confirmed >= 80 %": "PASS"
                if total["right confirmed"]["rate"] >= 0.8
                else "MISS",
            },
        )


def _diagnose_base(control: Control, base: Path) -> None:
    """The run's own diagnosis with this library (once)."""
    diagnose_once(base, "verification-base", run="run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="the real-run benchmark's runs")
    parser.add_argument("--out", type=Path, required=True, help="folder for the siblings")
    parser.add_argument("--seeds", default="10", help="N (seeds 0..N-1) or FIRST-LAST")
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side")
    add_results_argument(parser)
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
