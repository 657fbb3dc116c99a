"""Smoke test of benchmarks/diagnosis_accuracy.py: a few synthetic runs, the table's shape, and
low false-alarm rates on clean curves (the full table is a benchmark, not this test)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "diagnosis_accuracy.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("diagnosis_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_clean_synthetic_curves_raise_few_warnings_and_a_large_glitch_is_found():
    benchmark = load_benchmark()
    table = benchmark.synthetic_rates(8, (10, 20), ("clean", "glitch 10"), seed=1)
    # scenarios x validations (fixed, shuffled) x inputs (record, CLI) x epoch counts
    assert len(table) == 2 * 2 * 2 * 2
    assert {"scenario", "validation", "input", "epochs", "any warning", "epoch named"} <= set(
        table.columns
    )
    clean = table[table["scenario"] == "clean"]
    # 8 runs per row: one false alarm is 12.5 %; the full benchmark measures <= 5 %.
    assert (clean["any warning"] <= 0.125).all()
    glitch = table[table["scenario"] == "glitch 10"]
    assert (glitch["VALIDATION_SAMPLING_NOISE"] >= 0.75).all()
    shuffled = table[table["validation"].str.startswith("shuffled")]
    assert (shuffled["PARTIAL_VALIDATION"] == 1.0).all()  # true by construction


def test_synthetic_subcommand_prints_markdown_tables():
    command = [sys.executable, str(SCRIPT), "synthetic", "--repetitions", "2", "--epochs", "5"]
    command += ["--scenarios", "clean", "glitch 6"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    text = output.stdout
    assert "### Clean curves and slow drifts" in text and "### One-epoch glitches" in text
    assert text.count("| clean |") == 4 and text.count("| glitch 6 |") == 4


def test_real_subcommand_trains_diagnoses_and_tabulates_one_injected_cause():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "real", "--seeds", "1"]
        + ["--scenarios", "shuffled partial validation"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=True,
    )
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    header, row = table[0], table[-1]
    assert "found" in header and "PARTIAL_VALIDATION" in header
    assert row.startswith("| shuffled partial validation | PARTIAL_VALIDATION | 1 |")
    assert row.rstrip(" |").endswith("100%")
