"""Helpers shared by the benchmark scripts: timing, a plain-text table, and the results log.

Every benchmark appends one JSON line to `benchmarks/results.jsonl` (or the file given with
`--results`): the date, the exact command, the machine, the parameters and the measurements, so
numbers from different machines and commits can be compared later.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "results.jsonl"


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="JSON-lines file to append this run's record to (default: %(default)s)",
    )


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A fixed-width table: the first column left-aligned, the others right-aligned."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _cpu_model() -> str:
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit(root: Path = REPO_ROOT) -> str | None:
    """The checked-out commit, with '+dirty' when the working tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU, core counts, Python, and BLAS-related environment."""
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable_cores = os.cpu_count()
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores,
        "python": platform.python_version(),
        # Recorded, never changed. OPENBLAS_CORETYPE selects BLAS kernels; with
        # PYTHONDONTWRITEBYTECODE and no cached .pyc, every start-up compiles its imports.
        "environment": {
            name: os.environ[name]
            for name in (
                "OPENBLAS_CORETYPE",
                "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS",
                "PYTHONDONTWRITEBYTECODE",
            )
            if name in os.environ
        },
    }


def _library_commit() -> str | None:
    """The commit of the checkout the imported simtrain package comes from."""
    import simtrain

    return _git_commit(Path(simtrain.__file__).resolve().parents[2])


def append_result(
    path: str | os.PathLike,
    *,
    benchmark: str,
    parameters: dict[str, Any],
    results: Any,
    verdicts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one JSON line describing this run to `path` and return the record."""
    record = {
        "benchmark": benchmark,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "commit": _git_commit(),
        # Another checkout's library (PYTHONPATH=<checkout>/src), as "before" rows use.
        "library_commit": _library_commit(),
        "machine": machine_info(),
        "parameters": parameters,
        "results": results,
        "verdicts": verdicts or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write(json.dumps(record, sort_keys=False) + "\n")
    return record
