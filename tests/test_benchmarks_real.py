"""Smoke tests of the real-image benchmarks: tiny sizes, their tables and JSON lines."""

from __future__ import annotations

from tests.test_benchmarks import read_records, run_benchmark


def test_ingest_benchmark_compares_ours_with_keras_on_the_same_folder(tmp_path):
    results = tmp_path / "results.jsonl"
    output = run_benchmark(
        "ingest.py",
        "--images",
        "24",
        "--size",
        "32",
        "--images-per-shard",
        "5",
        "--results",
        str(results),
    ).stdout
    assert "keras image_dataset_from_directory" in output and "vs keras" in output
    assert "ours, sharded" in output and "ours, one job" in output
    [record] = read_records(results)
    assert record["benchmark"] == "ingest" and record["parameters"]["images"] == 24
    # keras twice, ours one job (1 thread, and N threads on N > 1 cores), ours sharded
    assert len(record["results"]["images_per_second"]) in (4, 5)


def test_real_plan_benchmark_plans_folders_without_a_job_per_image(tmp_path):
    results = tmp_path / "results.jsonl"
    output = run_benchmark(
        "plan_real.py",
        "--sizes",
        "3",
        "600",
        "--repeat",
        "1",
        "--images-per-shard",
        "500",
        "--results",
        str(results),
    ).stdout
    assert "folders x 600" in output and "minus floor" in output
    [record] = read_records(results)
    configs = record["results"]["configs"]
    # 5 classes: 1 ingest job each at 3 images, 2 at 600 (shards of 500); split, 2 packs,
    # 2 sample grids and `all` either way.
    assert configs["3"]["jobs"] == 5 + 6 and configs["600"]["jobs"] == 10 + 6


def test_real_image_benchmarks_document_their_command_in_help():
    for script in ("ingest.py", "plan_real.py"):
        output = run_benchmark(script, "--help").stdout
        assert "--results" in output and "usage:" in output
