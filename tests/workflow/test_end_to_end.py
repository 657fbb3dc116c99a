"""The whole workflow on a tiny config: data, training, diagnostics, comparison, report."""

import json
import shutil
import subprocess

import pandas as pd
import pytest

from tests.conftest import TINY_CONFIG, snakemake, write_config

RUNS = {
    "cnn": {
        "model": "small_cnn",
        "epochs": 3,
        "batch_size": 8,
        "augmentation": {"shear": 0.2, "zoom": 0.2, "horizontal_flip": True},
    },
    # The original mistake at tiny scale: 2 of 4 batches per epoch, 1 shuffled val batch.
    "cnn_partial": {
        "model": "small_cnn",
        "epochs": 3,
        "batch_size": 8,
        "steps_per_epoch": 2,
        "validation_steps": 1,
        "validation_shuffle": True,
    },
    "base": {"model": "baseline"},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    config = write_config(workdir, {**TINY_CONFIG, "runs": RUNS})
    snakemake(workdir, "--cores", "2", "--configfile", str(config))
    return workdir, config


def test_every_run_has_its_artifacts(finished):
    workdir, _ = finished
    for run in RUNS:
        run_dir = workdir / "results/runs" / run
        for name in [
            "history.tsv",
            "predictions.tsv",
            "metrics.json",
            "diagnostics.json",
            "diagnostics.md",
            "curves.png",
            "confusion.png",
            "config.resolved.yaml",
        ]:
            assert (run_dir / name).stat().st_size > 0, f"{run}/{name}"
    assert (workdir / "results/runs/cnn/model.keras").exists()
    assert (workdir / "results/benchmarks/train/cnn.tsv").exists()


def test_partial_epochs_are_diagnosed_and_full_coverage_is_not(finished):
    workdir, _ = finished

    def codes(run):
        diagnostics = json.loads((workdir / f"results/runs/{run}/diagnostics.json").read_text())
        return {finding["code"] for finding in diagnostics["findings"]}

    assert {"PARTIAL_EPOCH", "PARTIAL_VALIDATION"} <= codes("cnn_partial")
    assert not {"PARTIAL_EPOCH", "PARTIAL_VALIDATION"} & codes("cnn")


def test_comparison_lists_every_run_against_the_baseline(finished):
    workdir, _ = finished
    table = pd.read_csv(workdir / "results/comparison.tsv", sep="\t")
    assert sorted(table["run"]) == sorted(RUNS)
    assert "beats_baseline" in table.columns
    assert "base" in (workdir / "results/comparison.md").read_text()


def test_resolved_config_reproduces_the_run(finished):
    workdir, _ = finished
    import yaml

    resolved = yaml.safe_load((workdir / "results/runs/cnn/config.resolved.yaml").read_text())
    assert resolved["runs"]["cnn"]["seed"] == TINY_CONFIG["seed"]
    assert resolved["classes"] == TINY_CONFIG["classes"]


def test_report_renders_in_headless_chromium(finished, tmp_path):
    workdir, config = finished
    snakemake(
        workdir, "--cores", "2", "--configfile", str(config), "--report", "results/report.html"
    )
    report = workdir / "results/report.html"
    assert report.stat().st_size > 10_000
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (.ci/run installs Debian's chromium)")
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,900",
            "--virtual-time-budget=5000",
            f"--screenshot={screenshot}",
            report.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=float)
    assert pixels.std() > 5, "the report screenshot is blank"
