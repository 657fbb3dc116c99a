"""Atomic file writing: an output is either complete or absent, never half-written."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import yaml

from simtrain.common.failpoints import failpoint


def aside_path(path: str | os.PathLike) -> Path:
    """Where `atomic_path` keeps the previous version of a directory while it swaps."""
    path = Path(path)
    return path.parent / f".{path.name}.old"


def recover_directory(path: str | os.PathLike) -> None:
    """Finish or undo a directory swap that a kill interrupted.

    If `path` is missing but its aside copy exists, the kill fell between moving the old
    version aside and moving the new one in: the old version is the last complete one,
    so it goes back. If both exist, the kill fell after the swap: the aside copy is stale.
    """
    path, aside = Path(path), aside_path(path)
    if not aside.exists():
        return
    if path.exists():
        shutil.rmtree(aside)
    else:
        os.replace(aside, path)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds.

    Works for files and directories. The temporary name starts with '.' and ends with
    '.tmp', so a killed job leaves nothing that looks like a finished output. An existing
    directory is first renamed aside, then the new one renamed in, then the old deleted:
    at every moment a complete version exists under `path` or its aside name, and
    `recover_directory` (called here, and by readers before they read) puts it back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(path)
    # Leftovers of a writer that was killed: nobody reads them, so clear them now.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            aside = aside_path(path)
            os.replace(path, aside)
            failpoint("files.directory_swap")
            os.replace(target, path)
            shutil.rmtree(aside)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: object) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_yaml(path: str | os.PathLike, data: object) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_tsv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write a table with fixed float formatting so identical numbers give identical bytes."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.8g")
