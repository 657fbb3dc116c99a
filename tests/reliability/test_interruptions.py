"""Kill the whole workflow (SIGKILL to its process group) at many points, recover as the
README says, and check that nothing finished was lost and the results equal an
uninterrupted run's, byte for byte."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TINY_CONFIG, snakemake, snakemake_command, write_config

RUNS = {
    "cnn": {"model": "small_cnn", "epochs": 3, "batch_size": 8},
    "base": {"model": "baseline"},
}
# In the order the workflow reaches them; each recovery run goes on to the next point.
FAILPOINTS = [
    "simulate.mid_shard",  # PNGs half written
    "split.linked",  # links made, folders not yet published
    "split.before_manifest",  # folders published, manifest not written
    "pack.images_loaded",  # images.npy complete under its temporary name
    "pack.before_labels",  # images.npy published, labels.npy not
    "baseline.before_write",  # baseline fitted, nothing written
    "train.after_backup",  # between epochs 1 and 2
    "train.mid_epoch",  # inside epoch 2
    "train.writing_outputs",  # model saved, tables not yet
    "diagnose.between_files",  # diagnostics.json written, diagnostics.md not
    "compare.between_files",  # comparison tables written, plots not
]
# The outputs that must come out byte-identical (CPU): everything but wall-clock figures,
# .keras archives (they embed save times) and the plots that draw them.
DETERMINISTIC = [
    "images/**/*.png",
    "images/manifest.tsv",
    "packed/*/*",
    "samples/*.png",
    "runs/*/history.tsv",
    "runs/*/batches.tsv",
    "runs/*/predictions.tsv",
    "runs/*/diagnostics.json",
    "runs/*/diagnostics.md",
    "runs/*/config.resolved.yaml",
]


def fingerprints(results: Path) -> dict[str, str]:
    return {
        str(path.relative_to(results)): hashlib.sha256(path.read_bytes()).hexdigest()
        for pattern in DETERMINISTIC
        for path in results.glob(pattern)
        if not any(part.startswith(".") for part in path.relative_to(results).parts)
    }


def workflow(
    workdir: Path,
    config: Path,
    *extra: str,
    failpoint: str | None = None,
    kill_on: str | None = None,
) -> subprocess.CompletedProcess:
    """Run the workflow in its own process group, armed to die at a failpoint or as soon
    as it prints a line containing `kill_on`."""
    command = snakemake_command(workdir, "--cores", "2", "--configfile", str(config), *extra)
    env = {**os.environ, "SIMTRAIN_FAILPOINT": failpoint or ""}
    process = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if kill_on is not None and kill_on in line:
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=900)
    output = "".join(lines) + process.stdout.read()
    return subprocess.CompletedProcess(command, process.returncode, output, "")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("config"), {**TINY_CONFIG, "runs": RUNS})


@pytest.fixture(scope="module")
def reference(tmp_path_factory, config_file):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    snakemake(workdir, "--cores", "2", "--configfile", str(config_file))
    return fingerprints(workdir / "results")


def test_killed_at_every_point_the_workflow_recovers_to_identical_results(
    tmp_path, config_file, reference
):
    results = tmp_path / "results"
    for point in FAILPOINTS:
        killed = workflow(tmp_path, config_file, failpoint=point)
        assert killed.returncode == -signal.SIGKILL, (
            f"{point} was never reached:\n" + (killed.stdout[-3000:])
        )
        # Outputs are written under temporary names and renamed, so whatever exists under
        # a final name after the kill is complete and correct.
        for name, digest in fingerprints(results).items():
            assert digest == reference[name], f"after a kill at {point}, {name} is corrupt"
        snakemake(tmp_path, "--unlock", "--configfile", str(config_file))
    snakemake(tmp_path, "--cores", "2", "--configfile", str(config_file))

    assert fingerprints(results) == reference
    leftovers = [str(p) for p in results.rglob("*.tmp")]
    assert leftovers == [], "temporary files left behind"
    assert not (results / "runs/cnn/.backup").exists()


def test_a_killed_report_is_rebuilt_by_rerunning_the_command(tmp_path, config_file, reference):
    snakemake(tmp_path, "--cores", "2", "--configfile", str(config_file))
    # Killed while it loads the rules' code into the report, i.e. half-way through.
    killed = workflow(
        tmp_path, config_file, "--report", "results/report.html", kill_on="Loading script code"
    )
    assert killed.returncode == -signal.SIGKILL
    snakemake(tmp_path, "--unlock", "--configfile", str(config_file))
    snakemake(
        tmp_path,
        "--cores",
        "2",
        "--configfile",
        str(config_file),
        "--report",
        "results/report.html",
    )
    assert (tmp_path / "results/report.html").stat().st_size > 10_000
    assert fingerprints(tmp_path / "results") == reference
