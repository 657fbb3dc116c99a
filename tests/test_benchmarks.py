"""Smoke tests: each benchmark script runs at tiny size, prints its table and logs a JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_simulate_benchmark_prints_its_table_and_appends_a_record(tmp_path):
    results = tmp_path / "results.jsonl"
    output = run_benchmark(
        "simulate.py", "--images", "10", "--size", "32", "--repeat", "1", "--results", str(results)
    ).stdout
    assert "method" in output and "images/s" in output and "vs naive" in output
    assert "simulate only (no write)" in output
    assert "pixels identical in both writers' PNGs: yes" in output
    [record] = read_records(results)
    assert record["benchmark"] == "simulate"
    assert record["parameters"]["images"] == 10
    assert record["verdicts"]["pixels_identical"] is True


def test_plan_benchmark_prints_its_table_and_appends_a_record(tmp_path):
    results = tmp_path / "results.jsonl"
    output = run_benchmark(
        "plan.py", "--sizes", "10", "20", "--repeat", "1", "--results", str(results)
    ).stdout
    assert "config" in output and "jobs" in output and "minus floor" in output
    assert "snakemake --version (floor)" in output
    [record] = read_records(results)
    assert record["benchmark"] == "plan"
    assert set(record["results"]["configs"]) == {"10", "20"}
    # one shard per class + split + 2 packs + all
    classes = record["parameters"]["classes"]
    assert record["results"]["configs"]["10"]["jobs"] == classes + 4


def test_benchmarks_document_their_command_in_help():
    for script in ("simulate.py", "plan.py"):
        output = run_benchmark(script, "--help").stdout
        assert "--repeat" in output and "--results" in output
