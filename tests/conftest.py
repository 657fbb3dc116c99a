"""Shared fixtures: the repository root and a tiny config for whole-workflow runs."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.fixture
def tiny_config() -> dict:
    return yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
