"""Folders of real images: what they hold, checked by name only (cheap enough to plan with).

A class folder holds image files (sub-folders allowed); a labelled folder holds one sub-folder
per class. Listing uses `os.scandir` names, sizes and modification times only, so planning
stays flat in the number of images; the fingerprint of a listing is what the workflow tracks,
so that adding, removing or changing a file reruns the jobs that read that folder.
Hidden files and folders (names starting with '.') are skipped.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple

from simtrain.data.images import IMAGE_EXTENSIONS, is_image_name


class FolderError(ValueError):
    """A folder of images is missing, empty, holds other files or changed while read."""


class FileEntry(NamedTuple):
    """A listed file. A tuple, not a dataclass: listing 40 000 files must stay cheap."""

    path: str  # relative to the listed folder, '/'-separated
    size: int
    mtime_ns: int


def _walk(root: Path, prefix: str, found: list[FileEntry]) -> None:
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            relative = f"{prefix}{entry.name}"
            if entry.is_dir():
                _walk(Path(entry.path), f"{relative}/", found)
            else:
                stat = entry.stat()
                found.append(FileEntry(relative, stat.st_size, stat.st_mtime_ns))


def scan_folder(folder: str | os.PathLike, key: str) -> tuple[FileEntry, ...]:
    """Every (non-hidden) file under `folder`, sorted by relative path; `key` names the config
    key in errors."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FolderError(f"{key}: {folder} {what} (relative paths start at the working directory)")
    found: list[FileEntry] = []
    _walk(folder, "", found)
    return tuple(sorted(found))


def image_entries(folder: str | os.PathLike, key: str) -> tuple[FileEntry, ...]:
    """The image files of a class folder: none other, and at least one."""
    entries = scan_folder(folder, key)
    others = [e.path for e in entries if not is_image_name(e.path)]
    if others:
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        raise FolderError(
            f"{key}: {Path(folder) / others[0]}{more} is not an image file "
            f"({', '.join(IMAGE_EXTENSIONS)}); move it out of the folder"
        )
    if not entries:
        raise FolderError(f"{key}: {folder} holds no images")
    return entries


@cache
def planned_images(folder: str, key: str) -> tuple[FileEntry, ...]:
    """`image_entries`, listed once per process: for planning, where the config checks and the
    rules ask for the same folders. Jobs list their folder afresh."""
    return image_entries(folder, key)


def fingerprint(entries: Sequence[FileEntry]) -> str:
    """Identifies a listing: names, sizes and modification times of its files."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(f"{entry.path}\t{entry.size}\t{entry.mtime_ns}\n".encode())
    return digest.hexdigest()


def did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def labelled_images(
    folder: str | os.PathLike, classes: Sequence[str], key: str
) -> dict[str, tuple[FileEntry, ...]]:
    """The images of a labelled folder by class (its sub-folders), paths relative to `folder`.

    Every sub-folder must be a configured class (a typo gets a did-you-mean) and hold images;
    a configured class without a sub-folder is allowed (absent from the result)."""
    folder = Path(folder)
    entries = scan_folder(folder, key)
    loose = [e.path for e in entries if "/" not in e.path]
    if loose:
        raise FolderError(
            f"{key}: {folder / loose[0]} is not in a class sub-folder; a labelled folder holds "
            f"one sub-folder per class ({', '.join(classes)})"
        )
    by_class: dict[str, list[FileEntry]] = {}
    for entry in entries:
        by_class.setdefault(entry.path.split("/", 1)[0], []).append(entry)
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != ".")
    for name in subfolders:
        if name not in classes:
            raise FolderError(
                f"{key}: sub-folder {name!r} of {folder} is not a configured class "
                f"({', '.join(classes)}){did_you_mean(name, classes)}"
            )
        images = by_class.get(name, [])
        others = [e.path for e in images if not is_image_name(e.path)]
        if others:
            raise FolderError(
                f"{key}: {folder / others[0]} is not an image file "
                f"({', '.join(IMAGE_EXTENSIONS)}); move it out of the folder"
            )
        if not images:
            raise FolderError(f"{key}: class folder {folder / name} holds no images")
    if not subfolders:
        raise FolderError(f"{key}: {folder} has no class sub-folders ({', '.join(classes)})")
    return {name: tuple(by_class[name]) for name in subfolders}


@cache
def planned_labelled_images(
    folder: str, classes: tuple[str, ...], key: str
) -> dict[str, tuple[FileEntry, ...]]:
    """`labelled_images`, listed once per process (for planning, like `planned_images`)."""
    return labelled_images(folder, classes, key)


def check_unchanged(folder: str | os.PathLike, expected: Sequence[FileEntry], key: str) -> None:
    """Raise FolderError unless `folder` still lists exactly `expected` (an image added,
    removed, rewritten or touched since it was listed)."""
    now = {e.path: e for e in scan_folder(folder, key)}
    before = {e.path: e for e in expected}
    for path in sorted(set(before) | set(now)):
        if before.get(path) != now.get(path):
            if path not in before:
                change = "appeared"
            else:
                change = "disappeared" if path not in now else "changed"
            raise FolderError(
                f"{key}: {Path(folder) / path} {change} while the folder was being read; "
                "rerun once it is stable"
            )
