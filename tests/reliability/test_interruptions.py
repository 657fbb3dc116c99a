"""Kill the whole workflow (SIGKILL to its process group) at many points, recover as the
README says, and check that nothing finished was lost and the results equal an
uninterrupted run's, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

from tests.conftest import (
    FINISHED_RUNS,
    TINY_CONFIG,
    Workflow,
    replicate_dirs,
    snakemake,
    snakemake_command,
    write_config,
)

CNN_MODEL = "results/runs/cnn/seed-0/model.keras"
CNN_LOG = "results/logs/train/cnn/seed-0.log"
# In the order the workflow reaches them, each with the target the run is limited to (so
# the point is reached whatever order Snakemake picks among ready jobs; None: every
# output) and, for the training points, the epochs the killed `cnn` process must have
# resumed after and trained. Each recovery run goes on to the next point.
FAILPOINTS = [
    ("simulate.mid_shard", None, None),  # PNGs half written
    ("split.linked", None, None),  # links made, folders not yet published
    ("split.before_manifest", None, None),  # folders published, manifest not written
    ("pack.images_loaded", None, None),  # images.npy complete under its temporary name
    ("pack.before_labels", None, None),  # images.npy published, labels.npy not
    ("baseline.before_write", "results/runs/base/seed-0/metrics.json", None),  # fitted, not written
    ("train.after_backup", CNN_MODEL, (0, [1])),  # between epochs 1 and 2
    # (Kills inside an epoch and while one backup replaces the other are the training
    # process's own: tests/training/test_train.py kills it there and resumes it.)
    ("train.writing_outputs", CNN_MODEL, (1, [2, 3])),  # model saved, tables not yet
    ("diagnose.between_files", None, None),  # diagnostics.json written, diagnostics.md not
    ("compare.between_files", None, None),  # comparison tables written, plots not
]
# The outputs that must come out byte-identical (CPU): everything but wall-clock figures,
# .keras archives (they embed save times) and the plots that draw them.
DETERMINISTIC = [
    "images/**/*.png",
    "images/manifest.tsv",
    "packed/*/*",
    "samples/*.png",
    "runs/*/seed-*/history.tsv",
    "runs/*/seed-*/batches.tsv",
    "runs/*/seed-*/predictions.tsv",
    "runs/*/seed-*/diagnostics.json",
    "runs/*/seed-*/diagnostics.md",
    "runs/*/seed-*/config.resolved.yaml",
    "runs/*/fixes.json",
]


def fingerprints(results: Path) -> dict[str, str]:
    return {
        str(path.relative_to(results)): hashlib.sha256(path.read_bytes()).hexdigest()
        for pattern in DETERMINISTIC
        for path in results.glob(pattern)
        if not any(part.startswith(".") for part in path.relative_to(results).parts)
    }


def resumed_and_trained(log: str) -> tuple[int, list[int]]:
    """(epoch a training process resumed after, 0 if it started afresh; the epochs it ran),
    from its log: simtrain's resume line and Keras' own 'Epoch k/n' progress lines."""
    resumed = re.findall(r"resuming after epoch (\d+)", log)
    trained = [int(epoch) for epoch in re.findall(r"^Epoch (\d+)/\d+", log, re.M)]
    return (int(resumed[-1]) if resumed else 0), trained


def workflow(
    workdir: Path,
    config: Path,
    *extra: str,
    failpoint: str | None = None,
    kill_on: str | None = None,
    snakefile: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run the workflow in its own process group, armed to die at a failpoint or as soon
    as it prints a line containing `kill_on`."""
    # `extra` first: --configfile takes every word after it.
    command = snakemake_command(
        workdir,
        *extra,
        *("--cores", "2", "--configfile", str(config)),
        **({"snakefile": snakefile} if snakefile else {}),
    )
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


def test_killed_at_every_point_the_workflow_recovers_to_identical_results(
    tmp_path, finished_workflow: Workflow
):
    # The shared workflow's deep run (one seed) and baseline: every failpoint is in their jobs,
    # and every output this config makes must equal the shared one's.
    runs = {"cnn": {**FINISHED_RUNS["cnn"], "repeats": 1}, "base": FINISHED_RUNS["base"]}
    config = write_config(tmp_path, {**TINY_CONFIG, "runs": runs})
    expected = replicate_dirs(runs)
    # The shared cnn has 2 seeds and each seed's diagnosis pools the other's curve, so this
    # one-seed cnn's diagnostics differ from the shared seed-0's; they are checked apart.
    pooled = ("runs/cnn/seed-0/diagnostics.json", "runs/cnn/seed-0/diagnostics.md")
    reference = {
        name: digest
        for name, digest in fingerprints(finished_workflow.results).items()
        if (not name.startswith("runs/") or name.startswith(tuple(f"{d}/" for d in expected)))
        and name not in pooled
    }
    results = tmp_path / "results"
    for point, target, expected_training in FAILPOINTS:
        (tmp_path / CNN_LOG).unlink(missing_ok=True)  # so it holds this attempt's lines only
        killed = workflow(tmp_path, config, *([target] if target else []), failpoint=point)
        assert killed.returncode == -signal.SIGKILL, (
            f"{point} was never reached:\n" + (killed.stdout[-3000:])
        )
        # Outputs are written under temporary names and renamed, so whatever exists under
        # a final name after the kill is complete and correct.
        for name, digest in fingerprints(results).items():
            if name not in pooled:
                assert digest == reference[name], f"after a kill at {point}, {name} is corrupt"
        if expected_training is not None:
            # A resume that silently restarted from epoch 1 would still end identical.
            log = (tmp_path / CNN_LOG).read_text()
            assert resumed_and_trained(log) == expected_training, f"killed at {point}"
        snakemake(tmp_path, "--unlock", "--configfile", str(config))
        if point == "train.writing_outputs":
            # Its recovery finds all 3 epochs in the backup and trains none.
            (tmp_path / CNN_LOG).unlink()
            snakemake(tmp_path, CNN_MODEL, "--cores", "2", "--configfile", str(config))
            assert resumed_and_trained((tmp_path / CNN_LOG).read_text()) == (3, [])
    snakemake(tmp_path, "--cores", "2", "--configfile", str(config))

    final = fingerprints(results)
    assert {k: v for k, v in final.items() if k not in pooled} == reference
    assert set(pooled) <= set(final)
    json.loads((results / pooled[0]).read_text())  # complete
    leftovers = [str(p) for p in results.rglob("*.tmp")] + [str(p) for p in results.rglob(".*.old")]
    assert leftovers == [], "temporary files left behind"
    assert not (results / "runs/cnn/seed-0/.backup").exists()


def test_a_killed_report_is_rebuilt_by_rerunning_the_command(tmp_path, finished_workflow):
    copy = finished_workflow.copy(tmp_path / "workflow")
    reference = fingerprints(finished_workflow.results)
    # Killed while it loads the rules' code into the report, i.e. half-way through.
    killed = workflow(
        copy.workdir,
        copy.config,
        *("--report", "results/report.html"),
        kill_on="Loading script code",
        snakefile=copy.snakefile,
    )
    assert killed.returncode == -signal.SIGKILL
    copy.run("--unlock")
    copy.run("--report", "results/report.html")
    report = (copy.results / "report.html").read_text()
    # Complete: the page's closing tag, and every run's diagnostics embedded.
    assert report.rstrip().endswith("</html>")
    for folder in replicate_dirs():
        assert f"results/{folder}/diagnostics.md" in report
    assert fingerprints(copy.results) == reference
