"""Ingest folders of real images: a class's shards of PNGs (like simulated ones), or a whole
folder into memory-mappable arrays (evaluation and prediction sets).

Each file is read once: its bytes are hashed (sha256, recorded beside the image) and decoded
from the same bytes, then converted by `simtrain.data.images`. A file whose size or
modification time differs from the listing the job was planned with, or changes while it is
read, is an error, as is any file added or removed while the job runs: the outputs would not
be what the listing says. Outputs appear only complete (simtrain.common.files).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from simtrain.common.failpoints import failpoint
from simtrain.common.files import atomic_path, write_json, write_tsv
from simtrain.data.folders import (
    FileEntry,
    FolderError,
    check_unchanged,
    fingerprint,
    image_entries,
    labelled_images,
)
from simtrain.data.images import Conversion, ImageReadError, convert_pixels, decode_image
from simtrain.data.png import write_png
from simtrain.data.simulate import image_name, shard_range
from simtrain.data.split import SOURCES

log = logging.getLogger(__name__)

# A job stops after this many bad files and names them all.
MAX_REPORTED = 10


class IngestError(ValueError):
    """Files of a folder could not be ingested; the message names each one and why."""


def _signature(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_size, stat.st_mtime_ns


def convert_file(folder: Path, entry: FileEntry, conversion: Conversion) -> tuple[np.ndarray, str]:
    """(converted image, sha256 of the file's bytes) of one listed file."""
    path = folder / entry.path
    try:
        before = os.stat(path)
        if _signature(before) != (entry.size, entry.mtime_ns):
            raise FolderError(f"{path}: changed since its folder was listed; rerun")
        data = path.read_bytes()
        if _signature(os.stat(path)) != _signature(before) or len(data) != before.st_size:
            raise FolderError(f"{path}: changed while it was being read; rerun once it is stable")
    except FileNotFoundError as error:
        raise FolderError(f"{path}: disappeared since its folder was listed; rerun") from error
    except PermissionError as error:
        raise ImageReadError(f"{path}: cannot be read ({error.strerror})") from error
    image = convert_pixels(decode_image(data, path), conversion, name=str(path))
    return image, hashlib.sha256(data).hexdigest()


def convert_files(
    folder: Path,
    entries: Sequence[FileEntry],
    conversion: Conversion,
    store: Callable[[int, np.ndarray], None],
    *,
    threads: int = 1,
    description: str = "ingest",
) -> list[str]:
    """Convert `entries` (with `threads` threads; decoding releases the GIL), hand image i to
    `store(i, image)`, return the files' sha256s. Bad files are collected, up to MAX_REPORTED,
    and raised together as one IngestError."""
    hashes: list[str] = [""] * len(entries)
    problems: list[str] = []

    def work(i: int) -> None:
        if len(problems) >= MAX_REPORTED:
            return
        try:
            image, hashes[i] = convert_file(folder, entries[i], conversion)
        except (ImageReadError, FolderError) as error:
            problems.append(str(error))
            return
        store(i, image)

    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        progress = tqdm(
            pool.map(work, range(len(entries))),
            total=len(entries),
            desc=description,
            unit="img",
            mininterval=5,
        )
        for _ in progress:
            pass
    if problems:
        shown = "\n".join(f"  {problem}" for problem in sorted(problems))
        stopped = f" (stopped after {MAX_REPORTED})" if len(problems) >= MAX_REPORTED else ""
        raise IngestError(
            f"{len(problems)} file(s) of {folder} could not be ingested{stopped}:\n{shown}"
        )
    return hashes


def ingest_shard(
    out_dir: str | os.PathLike,
    *,
    class_name: str,
    folder: str | os.PathLike,
    planned_fingerprint: str,
    shard: int,
    images_per_shard: int,
    conversion: Conversion,
    threads: int = 1,
) -> int:
    """Write shard `shard` of a folder class as PNGs named like simulated ones (index = the
    file's position in the sorted listing), plus sources.tsv; return the image count."""
    folder = Path(folder)
    key = f"classes.{class_name}.folder"
    entries = image_entries(folder, key)
    if fingerprint(entries) != planned_fingerprint:
        raise FolderError(
            f"{key}: {folder} changed since the workflow was planned (files added, removed or "
            "modified); run the workflow again"
        )
    indices = shard_range(shard, len(entries), images_per_shard)
    chosen = [entries[i] for i in indices]
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()

        def store(i: int, image: np.ndarray) -> None:
            write_png(tmp / image_name(class_name, indices[i]), image)

        hashes = convert_files(
            folder,
            chosen,
            conversion,
            store,
            threads=threads,
            description=f"{class_name} {indices.start}-{indices.stop - 1}",
        )
        failpoint("ingest.converted")
        sources = pd.DataFrame(
            {"index": list(indices), "source": [e.path for e in chosen], "source_sha256": hashes}
        )
        sources.to_csv(tmp / SOURCES, sep="\t", index=False)
        check_unchanged(folder, entries, key)
    log.info("class %s: ingested %d images of %s", class_name, len(chosen), folder)
    return len(chosen)


def _write_array(
    folder: Path,
    entries: Sequence[FileEntry],
    conversion: Conversion,
    images_out: str | os.PathLike,
    *,
    threads: int,
    description: str,
) -> list[str]:
    with atomic_path(images_out) as tmp:
        shape = (len(entries), conversion.size, conversion.size, 1)
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=conversion.dtype, shape=shape)

        def store(i: int, image: np.ndarray) -> None:
            array[i, :, :, 0] = image

        hashes = convert_files(
            folder, entries, conversion, store, threads=threads, description=description
        )
        array.flush()
    return hashes


def ingest_labelled_set(
    folder: str | os.PathLike,
    *,
    classes: Sequence[str],
    conversion: Conversion,
    out_dir: str | os.PathLike,
    key: str,
    planned_fingerprint: str | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """A labelled folder (one sub-folder per class) -> out_dir/images.npy (N x size x size x 1),
    labels.npy (indices into `classes`), classes.json and files.tsv (file, class, sha256);
    ordered by class, then file. Returns the files table."""
    folder, out_dir = Path(folder), Path(out_dir)
    by_class = labelled_images(folder, classes, key)
    entries = [entry for name in sorted(by_class) for entry in by_class[name]]
    if planned_fingerprint is not None and fingerprint(entries) != planned_fingerprint:
        raise FolderError(f"{key}: {folder} changed since the workflow was planned; run again")
    label_of = {name: i for i, name in enumerate(classes)}
    labels = np.array([label_of[e.path.split("/", 1)[0]] for e in entries], dtype=np.int64)
    hashes = _write_array(
        folder, entries, conversion, out_dir / "images.npy", threads=threads, description=key
    )
    check_unchanged(folder, entries, key)
    with atomic_path(out_dir / "labels.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, labels)
    write_json(out_dir / "classes.json", list(classes))
    files = pd.DataFrame(
        {
            "file": [e.path for e in entries],
            "class": [classes[i] for i in labels],
            "sha256": hashes,
        }
    )
    write_tsv(out_dir / "files.tsv", files)
    counts = files["class"].value_counts().to_dict()
    log.info(
        "%s: %d images %s; no images of %s",
        key,
        len(files),
        counts,
        sorted(set(classes) - set(counts)) or "none missing",
    )
    return files


def ingest_unlabelled_set(
    folder: str | os.PathLike,
    *,
    conversion: Conversion,
    out_dir: str | os.PathLike,
    key: str,
    planned_fingerprint: str | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """A folder of images (sub-folders allowed) -> out_dir/images.npy and files.tsv (file,
    sha256), ordered by file. Returns the files table."""
    folder, out_dir = Path(folder), Path(out_dir)
    entries = image_entries(folder, key)
    if planned_fingerprint is not None and fingerprint(entries) != planned_fingerprint:
        raise FolderError(f"{key}: {folder} changed since the workflow was planned; run again")
    hashes = _write_array(
        folder, entries, conversion, out_dir / "images.npy", threads=threads, description=key
    )
    check_unchanged(folder, entries, key)
    files = pd.DataFrame({"file": [e.path for e in entries], "sha256": hashes})
    write_tsv(out_dir / "files.tsv", files)
    log.info("%s: %d images", key, len(files))
    return files
