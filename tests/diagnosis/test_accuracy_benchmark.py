"""Smoke tests of benchmarks/diagnosis_accuracy.py: a few synthetic runs, and one real
scenario trained, checked for its symptom, diagnosed and tabulated (the full tables are a
benchmark, not these tests)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from tests.conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
SCRIPT = BENCHMARKS / "diagnosis_accuracy.py"


def load_benchmark():
    sys.path.insert(0, str(BENCHMARKS))  # its sibling modules import each other
    spec = importlib.util.spec_from_file_location("diagnosis_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_synthetic_clean_runs_raise_few_warnings_and_large_glitches_are_found():
    benchmark = load_benchmark()
    runs = benchmark.synthetic_runs(3, (20,), ["clean saturating", "glitch 20"], seed=1)
    clean = runs[runs["scenario"].str.startswith("clean")]
    glitch = runs[runs["scenario"] == "glitch 20"]
    # 3 shocks x 3 validations x 3 runs x 2 inputs; the full benchmark measures the rate.
    assert len(clean) == 54 and clean["warnings"].map(bool).sum() <= 2
    assert glitch["beyond"].mean() >= 0.9 and glitch["epoch_named"].mean() >= 0.9
    tables = benchmark.synthetic_tables(runs)
    assert {"clean by validation", "clean by shape and shock", "positives"} == set(tables)
    assert "[" in tables["clean by validation"]["WARNING"].iloc[-1]  # a Wilson interval


def test_real_runs_are_trained_checked_for_their_symptom_diagnosed_and_scored(tmp_path):
    out = tmp_path / "runs"
    common = dict(capture_output=True, text=True, cwd=BENCHMARKS, timeout=900, check=True)
    train = [sys.executable, str(SCRIPT), "real", "train", "--out", str(out), "--seeds", "1"]
    subprocess.run(train + ["--scenarios", "shuffled partial validation"], **common)
    info = json.loads(
        (out / "shuffled_partial_validation" / "seed-0" / "scenario.json").read_text()
    )
    assert info["symptom"]["present"] is True
    results = tmp_path / "results.jsonl"
    score = [sys.executable, str(SCRIPT), "real", "score", "--out", str(out), "--label", "t"]
    output = subprocess.run(score + ["--results", str(results)], **common).stdout
    table = [line for line in output.splitlines() if line.startswith("| shuffled")]
    assert table and "PARTIAL_VALIDATION" in table[0] and "100.0%" in table[0]
    record = json.loads(results.read_text().splitlines()[-1])
    assert record["benchmark"] == "diagnosis_accuracy real"
    assert record["results"]["shuffled partial validation"]["detected"]["hits"] == 1
