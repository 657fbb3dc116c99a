"""Shared fixtures: the repository root, a tiny config, and finished tiny workflows.

Whole-workflow runs dominate the suite's time, so the finished workflows are built once per
session, by whichever pytest-xdist worker asks first: tests that only read one share it; tests
that change it take their own copy.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

TINY_CONFIG = {
    "seed": 7,
    "image_size": 32,
    "images_per_class": 12,
    "images_per_shard": 5,
    "validation_fraction": 0.25,
    "classes": {
        "blobs": {"simulator": "blobs", "params": {"noise": 0.05}},
        "rings": {"simulator": "rings", "params": {"noise": 0.05}},
        "streaks": {"simulator": "streaks", "params": {"noise": 0.05}},
    },
    "runs": {},
}
# The runs of the finished tiny workflow: each kind of training rule, seed replicates, and
# the original mistake at tiny scale (2 of 4 batches per epoch, 1 shuffled validation batch)
# with its fixes verified by sibling runs.
FINISHED_RUNS = {
    "cnn": {
        "model": "small_cnn",
        "epochs": 3,
        "batch_size": 8,
        "repeats": 2,
        "augmentation": {"shear": 0.2, "zoom": 0.2, "horizontal_flip": True},
    },
    "cnn_partial": {
        "model": "small_cnn",
        "epochs": 3,
        "batch_size": 8,
        "steps_per_epoch": 2,
        "validation_steps": 1,
        "validation_shuffle": True,
        "verify_fixes": True,
    },
    "base": {"model": "baseline"},
}


def seed_dir(run: str, replicate: int = 0) -> str:
    """A replicate's folder, relative to results/."""
    return f"runs/{run}/seed-{replicate}"


def replicate_dirs(runs: dict = FINISHED_RUNS) -> list[str]:
    """Every configured replicate's folder, relative to results/."""
    return [seed_dir(run, k) for run in runs for k in range(runs[run].get("repeats", 1))]


def write_config(directory: Path, config: dict, name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_command(workdir: Path, *args: str, snakefile: Path = ROOT / "Snakefile") -> list:
    """The command line that runs the workflow's Snakemake in `workdir`, default profile."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--workflow-profile",
        str(snakefile.parent / "profiles/default"),
        *args,
    ]


def snakemake(
    workdir: Path,
    *args: str,
    snakefile: Path = ROOT / "Snakefile",
    check: bool = True,
    env: dict | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    """Run the workflow's Snakemake in `workdir` and wait for it."""
    command = snakemake_command(workdir, *args, snakefile=snakefile)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


# The slowest modules, slowest first (pytest-xdist hands whole modules to the workers in
# collection order, so the long ones start at once and the short ones fill in at the end).
# The first builds the finished workflow; the Slurm module, which needs it too, starts its
# cluster and its dry-run test meanwhile (on a third worker; on two, after the training tests).
SLOWEST_MODULES = [
    "reliability/test_interruptions.py",
    "training/test_train.py",
    "workflow/test_slurm.py",
    "workflow/test_workflow.py",
    # Builds its own workflow on real-image folders (its data stage differs).
    "workflow/test_real_images.py",
    "test_benchmarks.py",
    "training/test_applications.py",
]


# Optional: pytest-xdist defines the hook, and `-p no:xdist` must still run the tests.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`--numprocesses auto`: one worker per usable CPU, plus one. The Slurm tests wait on the
    cluster with the CPU idle (a one-minute time limit to run out, jobs to poll), and a worker
    waits for a shared workflow another one builds; the extra worker fills those waits."""
    return len(os.sched_getaffinity(0)) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {f"tests/{module}": i for i, module in enumerate(SLOWEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def unavailable(reason: str) -> None:
    """Skip a test whose system package (Slurm, Chromium) is missing, or, under CI=true,
    fail it: CI must run every test, not report a skip as a pass."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, but {reason}", pytrace=False)
    pytest.skip(reason)


def job_counts(output: str) -> dict[str, int]:
    """Jobs per rule from Snakemake's "Job stats" table in `output` ({} if it has none)."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture
def tiny_config() -> dict:
    return yaml.safe_load(yaml.safe_dump(TINY_CONFIG))


# What a checkout needs to run the workflow (a user's clone, without tests and benchmarks).
CHECKOUT = ["Snakefile", "workflow", "src", "config", "profiles", "envs"]


def copy_checkout(destination: Path) -> Path:
    """This checkout's workflow files copied into `destination`; returns its Snakefile."""
    ignore = shutil.ignore_patterns("__pycache__")
    for name in CHECKOUT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(source, destination / name)
    return destination / "Snakefile"


@dataclass(frozen=True)
class Workflow:
    """A workflow directory, the config file it ran with and the Snakefile that ran it
    (this checkout's, or a copy inside the directory, as in a user's clone)."""

    workdir: Path
    config: Path
    snakefile: Path = ROOT / "Snakefile"

    @property
    def results(self) -> Path:
        return self.workdir / "results"

    def run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """Snakemake on this workflow's config with 2 cores, plus `args` (targets or
        options; they go first, as --configfile takes every word after it)."""
        return snakemake(
            self.workdir,
            *args,
            "--cores",
            "2",
            "--configfile",
            str(self.config),
            snakefile=self.snakefile,
            **kwargs,
        )

    def dry_run(
        self, *targets: str, change: Callable[[dict], None] | None = None, directory: Path
    ) -> subprocess.CompletedProcess:
        """`snakemake -n` for `targets` (every output if none) with this workflow's config
        changed by `change`; the changed config goes to `directory`/changed.yaml."""
        config = yaml.safe_load(self.config.read_text())
        if change is not None:
            change(config)
        changed = write_config(directory, config, "changed.yaml")
        return snakemake(
            self.workdir,
            *targets,
            *("-n", "--cores", "2", "--configfile", str(changed)),
            snakefile=self.snakefile,
        )

    def copy(self, destination: Path) -> Workflow:
        """A private copy (modification times kept, so Snakemake sees it as finished); a
        Snakefile inside the directory is copied with it, as when a user moves a clone."""
        shutil.copytree(self.workdir, destination, symlinks=True, dirs_exist_ok=True)
        snakefile = self.snakefile
        if snakefile.is_relative_to(self.workdir):
            snakefile = destination / snakefile.relative_to(self.workdir)
        return Workflow(destination, destination / self.config.relative_to(self.workdir), snakefile)


def shared_workflow(tmp_path_factory, name: str, config: dict, checkout: bool = False) -> Workflow:
    """The finished workflow `name`, built once per test session: the first pytest-xdist
    worker to ask builds it under a lock; the others wait for it and reuse it. With
    `checkout`, it runs a copy of the workflow's files inside its directory (a user's clone);
    else this checkout's Snakefile on a directory apart (`--directory`)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' common parent
    snakefile = root / name / "Snakefile" if checkout else ROOT / "Snakefile"
    workflow = Workflow(root / name, root / name / "config.yaml", snakefile)
    built = root / f"{name}.built"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            shutil.rmtree(workflow.workdir, ignore_errors=True)  # a failed earlier attempt
            workflow.workdir.mkdir()
            if checkout:
                copy_checkout(workflow.workdir)
            write_config(workflow.workdir, config)
            # Keeps each job's script with its pickled `snakemake` object (test_envs.py).
            workflow.run("--skip-script-cleanup")
            built.touch()
    return workflow


@pytest.fixture(scope="session")
def finished_workflow(tmp_path_factory) -> Workflow:
    """The tiny workflow with FINISHED_RUNS, run to the end once per session in a clone of
    the workflow (its own Snakefile: use `run`/`dry_run`, which pass it). Read only: a test
    that changes anything in it takes `finished_workflow.copy(tmp_path)`."""
    config = {**TINY_CONFIG, "runs": FINISHED_RUNS}
    return shared_workflow(tmp_path_factory, "finished", config, checkout=True)


@pytest.fixture(scope="session")
def data_workflow(tmp_path_factory) -> Workflow:
    """The tiny workflow without runs (data stage and sample grids), run once per session.
    Read only, like `finished_workflow`."""
    return shared_workflow(tmp_path_factory, "data-only", TINY_CONFIG)
