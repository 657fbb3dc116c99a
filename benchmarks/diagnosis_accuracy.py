"""How often the diagnostics are right, on runs whose answer is known.

    uv run python benchmarks/diagnosis_accuracy.py synthetic [--repetitions 40] [--seed 0]
    uv run python benchmarks/diagnosis_accuracy.py real train --out runs/ [--seeds 10]
    uv run python benchmarks/diagnosis_accuracy.py real score --out runs/ [--label after]

`synthetic` draws runs from `diagnosis_synthetic` (shapes the diagnosis's trend does not fit,
shocks shared by all images) and feeds `diagnose()` what the workflow gives it (history +
validation record + final predictions) or what the command line gives it (a CSVLogger
history alone). `real` trains tiny runs of the workflow's own code with one injected cause
each (`diagnosis_real_runs`), checks that each really shows its symptom, and scores the
diagnosis of every run; `score` can be rerun with another version of the library
(PYTHONPATH=<checkout>/src) on the same trained runs, for before/after tables.

Every rate comes with its Wilson 95 % interval. Targets (fixed before the tables were
computed, README): clean runs raise a WARNING in <= 5 % with the interval's upper bound
<= 12 %; each inferred cause is detected in >= 80 %, named as *the* cause in >= 70 %, a wrong
cause in <= 10 %. Rates also go to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from itertools import product

import numpy as np
import pandas as pd
from common import add_results_argument, append_result, positive_int
from diagnosis_synthetic import (
    CLEAN_SHOCKS,
    SHAPES,
    VALIDATIONS,
    settings_of,
    simulate_run,
)

from simtrain.diagnosis.diagnostics import diagnose
from simtrain.reporting.statistics import wilson_interval

EPOCH_COUNTS = (10, 20, 50)
GLITCHES = (5.0, 10.0, 20.0)  # accuracy points lost in one epoch
JUMPY = (6.0, 10.0)  # SD of the per-epoch shock, accuracy points
# Config arithmetic, true by construction when validation is partial: not a false alarm.
ARITHMETIC = {"PARTIAL_VALIDATION", "PARTIAL_EPOCH"}


def rate(hits: int, runs: int) -> dict:
    low, high = wilson_interval(hits, runs) if runs else (float("nan"),) * 2
    return {
        "hits": int(hits),
        "runs": int(runs),
        "rate": hits / runs if runs else None,
        "low": low,
        "high": high,
    }


def rate_text(r: dict) -> str:
    if not r["runs"]:
        return "–"
    return f"{r['rate']:.1%} [{r['low']:.1%}, {r['high']:.1%}] ({r['hits']}/{r['runs']})"


def outcome(result, glitch_epoch: int | None) -> dict:
    """What a diagnosis said: warnings, beyond noise, the named cause, the glitch epoch.
    Works with diagnostics from before the `fluctuation` decomposition (older checkouts)."""
    warnings = {f.code for f in result.findings if f.severity != "info"} - ARITHMETIC
    fluctuation = getattr(result, "fluctuation", None)
    if fluctuation is not None:
        beyond, cause = fluctuation["beyond_noise"], fluctuation["cause"]
        named = fluctuation["glitch_epoch"]
    else:  # the old verdict: VALIDATION_SAMPLING_NOISE as a warning, its glitch epoch
        noise = next((f for f in result.findings if f.code == "VALIDATION_SAMPLING_NOISE"), None)
        beyond = noise is not None and noise.severity == "warning"
        cause = None
        named = noise.evidence.get("glitch_epoch") if beyond else None
    return {
        "warnings": warnings,
        "beyond": bool(beyond),
        "cause": cause,
        "epoch_named": glitch_epoch is not None and named == glitch_epoch,
    }


def diagnose_synthetic(run: dict, validation, with_record: bool):
    settings = settings_of(validation, len(run["history"]))
    if with_record:
        extra = dict(
            validation_record=run["record"],
            predictions=run["predictions"],
            train_label_counts={str(k): 2_000 for k in range(5)},
        )
        return diagnose(run["history"], **settings, **extra)
    return diagnose(run["history"], **settings)


def scenarios() -> list[tuple[str, dict]]:
    """(name, simulate_run keyword arguments); names starting 'clean' are negatives."""
    clean = [
        (f"clean {shape}, shock {shock:g}", {"shape": shape, "shock": shock})
        for shape, shock in product(SHAPES, CLEAN_SHOCKS)
    ]
    glitches = [(f"glitch {k:g}", {"shock": 1.0, "glitch": k}) for k in GLITCHES]
    jumpy = [(f"jumpy {s:g}", {"shock": s}) for s in JUMPY]
    return clean + glitches + jumpy + [("drift 10", {"shock": 1.0, "drift": 10.0})]


def synthetic_runs(
    repetitions: int, epoch_counts=EPOCH_COUNTS, chosen=None, seed: int = 0
) -> pd.DataFrame:
    """One row per run and input: scenario, validation, epochs, input and the outcome."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, arguments in scenarios():
        if chosen and not any(name.startswith(c) for c in chosen):
            continue
        for validation, epochs in product(VALIDATIONS, epoch_counts):
            for _ in range(repetitions):
                run = simulate_run(rng, validation, epochs, **arguments)
                for with_record in (True, False):
                    result = diagnose_synthetic(run, validation, with_record)
                    rows.append(
                        {
                            "scenario": name,
                            "validation": validation.name,
                            "epochs": epochs,
                            "input": "history + record" if with_record else "history only (CLI)",
                            **outcome(result, run["glitch_epoch"]),
                        }
                    )
    return pd.DataFrame(rows)


def _rates(group: pd.DataFrame, column: str) -> dict:
    return rate(int(group[column].sum()), len(group))


def synthetic_tables(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    runs = runs.assign(warning=runs["warnings"].map(bool))
    clean = runs[runs["scenario"].str.startswith("clean")]
    tables = {}
    rows = []
    for (validation, source), group in clean.groupby(["validation", "input"], sort=False):
        rows.append(
            {
                "validation": validation,
                "input": source,
                "WARNING": rate_text(_rates(group, "warning")),
            }
        )
    rows.append(
        {"validation": "all", "input": "all", "WARNING": rate_text(_rates(clean, "warning"))}
    )
    tables["clean by validation"] = pd.DataFrame(rows)
    rows = []
    for scenario, group in clean.groupby("scenario", sort=False):
        codes = Counter(code for w in group["warnings"] for code in w)
        rows.append(
            {
                "scenario": scenario,
                "WARNING": rate_text(_rates(group, "warning")),
                "codes": ", ".join(f"{c} {n}" for c, n in codes.most_common()) or "–",
            }
        )
    tables["clean by shape and shock"] = pd.DataFrame(rows)
    positives = runs[~runs["scenario"].str.startswith("clean")]
    rows = []
    for (scenario, validation, epochs), group in positives.groupby(
        ["scenario", "validation", "epochs"], sort=False
    ):
        row = {
            "scenario": scenario,
            "validation": validation,
            "epochs": epochs,
            "beyond noise": rate_text(_rates(group, "beyond")),
        }
        if scenario.startswith("glitch"):
            row["epoch named"] = rate_text(_rates(group, "epoch_named"))
        rows.append(row)
    tables["positives"] = pd.DataFrame(rows).fillna("")
    return tables


def markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    lines = [header, "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def run_synthetic(arguments: argparse.Namespace) -> None:
    runs = synthetic_runs(
        arguments.repetitions, tuple(arguments.epochs), arguments.scenarios, arguments.seed
    )
    tables = synthetic_tables(runs)
    for title, table in tables.items():
        print(f"### Synthetic: {title} ({arguments.repetitions} runs per cell)\n")
        print(markdown(table) + "\n")
    clean = runs[runs["scenario"].str.startswith("clean")]
    overall = rate(int(clean["warnings"].map(bool).sum()), len(clean))
    if arguments.results is not None:
        append_result(
            arguments.results,
            benchmark="diagnosis_accuracy synthetic",
            parameters={
                "repetitions": arguments.repetitions,
                "epochs": arguments.epochs,
                "seed": arguments.seed,
                "scenarios": arguments.scenarios,
            },
            results={title: table.to_dict("records") for title, table in tables.items()},
            verdicts={
                "clean WARNING <= 5 %, upper bound <= 12 %": {
                    **overall,
                    "verdict": "PASS"
                    if overall["rate"] <= 0.05 and overall["high"] <= 0.12
                    else "MISS",
                }
            },
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    synthetic = commands.add_parser("synthetic", help="runs from the stated synthetic model")
    synthetic.add_argument("--repetitions", type=positive_int, default=40, help="runs per cell")
    synthetic.add_argument("--epochs", type=positive_int, nargs="+", default=list(EPOCH_COUNTS))
    synthetic.add_argument("--seed", type=int, default=0, help="seed of the whole table")
    synthetic.add_argument(
        "--scenarios", nargs="+", help="scenario name prefixes (clean, glitch, jumpy, drift)"
    )
    add_results_argument(synthetic)
    synthetic.set_defaults(handler=run_synthetic)
    from diagnosis_real_runs import add_real_commands

    add_real_commands(commands)
    arguments = parser.parse_args(argv)
    arguments.handler(arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
