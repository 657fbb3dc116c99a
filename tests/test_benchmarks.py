"""Smoke tests: each benchmark script runs at tiny size, prints its table and logs a JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

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
    # one shard per class + split + 2 packs + 2 sample grids + all
    classes = record["parameters"]["classes"]
    assert record["results"]["configs"]["10"]["jobs"] == classes + 6


def test_plan_benchmark_plans_the_full_configs_runs_with_keep_runs(tmp_path):
    results = tmp_path / "results.jsonl"
    full = ROOT / "config" / "full.yaml"
    output = run_benchmark(
        "plan.py",
        *("--sizes", "10", "--repeat", "1", "--config", str(full), "--keep-runs"),
        *("--results", str(results)),
    ).stdout
    assert f"runs: {len(yaml.safe_load(full.read_text())['runs'])} from full.yaml" in output
    [record] = read_records(results)
    # Data jobs as above, plus every replicate's training, diagnosis and plots, the model
    # views, the fix plan and the comparison: far more than the data stage alone.
    assert record["results"]["configs"]["10"]["jobs"] > 5 + 6 + 3 * 20


def test_input_pipeline_benchmark_compares_every_pipeline(tmp_path):
    results = tmp_path / "results.jsonl"
    output = run_benchmark(
        "input_pipeline.py",
        "--images",
        "40",
        "--size",
        "32",
        "--repeat",
        "1",
        "--skip-save-to-dir",
        "--results",
        str(results),
    ).stdout
    for method in [
        "original, augmented",
        "original, no augmentation",
        "image_dataset_from_directory",
        "ours, delivery (uint8 memmap)",
        "ours, augmented (fused warp)",
        "ours, augmented (3 Keras layers)",
    ]:
        assert method in output
    [record] = read_records(results)
    assert all(rate > 0 for rate in record["results"]["images_per_second"].values())


def test_train_throughput_benchmark_runs_the_real_train_step(tmp_path):
    results = tmp_path / "results.jsonl"
    output = run_benchmark(
        "train_throughput.py",
        "--model",
        "small_cnn",
        "--size",
        "32",
        "--batch",
        "8",
        "--steps",
        "3",
        "--workers",
        "2",
        "--repeat",
        "1",
        "--precision",
        "float32",
        "--results",
        str(results),
    ).stdout
    assert "packed/in-memory" in output
    [record] = read_records(results)
    measured = record["results"]["float32"]
    assert measured["packed"] > 0 and measured["in_memory"] > 0 and measured["predict"] > 0


def test_architectures_benchmark_times_the_workflows_model(tmp_path):
    results = tmp_path / "results.jsonl"
    output = run_benchmark(
        "architectures.py",
        "--models",
        "MobileNetV3Small",
        "--size",
        "32",
        "--steps",
        "2",
        "--seconds",
        "0.1",
        "--results",
        str(results),
    ).stdout
    assert "| MobileNetV3 | `MobileNetV3Small` | 32 |" in output
    [record] = read_records(results)
    [measured] = record["results"]
    assert measured["train_images_per_second"] > 0 and measured["predict_images_per_second"] > 0


def test_end_to_end_benchmark_summarises_every_stage(tmp_path):

    from tests.conftest import TINY_CONFIG

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY_CONFIG, "runs": {"base": {"model": "baseline"}}}))
    results = tmp_path / "results.jsonl"
    output = run_benchmark(
        "end_to_end.py", "--config", str(config), "--cores", "2", "--results", str(results)
    ).stdout
    for stage in ["simulate", "split", "pack", "train base", "diagnose"]:
        assert stage in output
    [record] = read_records(results)
    assert record["results"]["wall_seconds"] > 0


def test_seed_statistics_benchmark_prints_coverage_error_rates_and_power(tmp_path):
    results = tmp_path / "results.jsonl"
    output = run_benchmark("seed_statistics.py", "--experiments", "100", "--results", str(results))
    for heading in ("miss low", "miss high", "coverage", "exact McNemar", "non-inferiority"):
        assert heading in output.stdout
    [record] = read_records(results)
    assert record["benchmark"] == "seed_statistics"
    cells = {(r["regime"], r["seeds"], r["method"]) for r in record["results"]["coverage"]}
    assert len(cells) == 3 * 3 * 5  # regimes x seed counts x methods
    assert all(r["experiments"] == 100 for r in record["results"]["coverage"])


def test_benchmarks_document_their_command_in_help():
    for script in (
        "seed_statistics.py",
        "simulate.py",
        "plan.py",
        "input_pipeline.py",
        "train_throughput.py",
        "end_to_end.py",
        "architectures.py",
    ):
        output = run_benchmark(script, "--help").stdout
        assert "--results" in output and "usage:" in output
