"""Pack one split's PNGs into .npy arrays that training reads by memory map.

The arrays are uint8 with `bit_depth` 8 (the default) and uint16 with 16: real images ingested
at 16 bits keep their depth, and 8-bit PNGs (simulated classes) are scaled by 257, which maps
0..255 exactly onto 0..65535, so every class spans the same range.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from simtrain.common.failpoints import failpoint
from simtrain.common.files import atomic_path, write_json
from simtrain.data.split import file_sha256

log = logging.getLogger(__name__)


class ImageFileError(ValueError):
    """A PNG in the split folders is unreadable, of the wrong size, or not what was split."""


def read_png(
    path: str | os.PathLike, size: int, sha256: str | None = None, bit_depth: int = 8
) -> np.ndarray:
    """A size x size greyscale image as uint8 (bit_depth 8) or uint16 (bit_depth 16); raises
    ImageFileError naming the file otherwise."""
    path = Path(path)
    if sha256 is not None and file_sha256(path) != sha256:
        raise ImageFileError(f"{path}: content differs from the manifest (modified after split?)")
    try:
        with Image.open(path) as image:
            image.load()
            allowed = ("L",) if bit_depth == 8 else ("L", "I;16", "I;16B")
            if image.mode not in allowed:
                raise ImageFileError(
                    f"{path}: expected {bit_depth}-bit greyscale (mode {' or '.join(allowed)}), "
                    f"got {image.mode}"
                )
            if image.size != (size, size):
                raise ImageFileError(
                    f"{path}: expected {size}x{size} pixels, got {image.size[0]}x{image.size[1]}"
                )
            if bit_depth == 8:
                return np.asarray(image, dtype=np.uint8)
            pixels = np.asarray(image).astype(np.uint16)
            return pixels * np.uint16(257) if image.mode == "L" else pixels
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageFileError(f"{path}: not a readable PNG ({error})") from error


def check_folder_matches(split_dir: Path, expected: Sequence[str]) -> None:
    """The split folder holds exactly the manifest's images: nothing added, nothing missing."""
    on_disk = {p.relative_to(split_dir.parent).as_posix() for p in split_dir.glob("*/*.png")}
    missing = sorted(set(expected) - on_disk)
    extra = sorted(on_disk - set(expected))
    if missing:
        raise ImageFileError(f"{split_dir.parent / missing[0]}: listed in the manifest but missing")
    if extra:
        raise ImageFileError(f"{split_dir.parent / extra[0]}: not in the manifest; rerun the split")


def pack_split(
    *,
    images_root: str | os.PathLike,
    manifest_path: str | os.PathLike,
    split: str,
    classes: Sequence[str],
    size: int,
    images_out: str | os.PathLike,
    labels_out: str | os.PathLike,
    classes_out: str | os.PathLike,
    threads: int = 1,
    bit_depth: int = 8,
) -> int:
    """Write images.npy (N x size x size x 1, uint8 or uint16 by `bit_depth`), labels.npy
    (int64) and classes.json.

    Images are ordered by class, then index; labels index into `classes`.
    """
    images_root = Path(images_root)
    # Class names are text even where pandas would guess otherwise ('NA', 'null', '007').
    manifest = pd.read_csv(
        manifest_path,
        sep="\t",
        dtype={"path": str, "class": str, "split": str, "sha256": str},
        keep_default_na=False,
    )
    rows = manifest[manifest["split"] == split].sort_values(["class", "index"], ignore_index=True)
    if rows.empty:
        raise ValueError(f"{manifest_path}: no images in split {split!r}")
    unknown = sorted(set(rows["class"]) - set(classes))
    if unknown:
        raise ValueError(f"{manifest_path}: classes {unknown} are not configured {list(classes)}")
    check_folder_matches(images_root / split, rows["path"].tolist())

    label_of = {name: i for i, name in enumerate(classes)}
    labels = rows["class"].map(label_of).to_numpy(dtype=np.int64)
    paths = [images_root / p for p in rows["path"]]

    with atomic_path(images_out) as tmp:
        array = np.lib.format.open_memmap(
            tmp,
            mode="w+",
            dtype=np.uint8 if bit_depth == 8 else np.uint16,
            shape=(len(rows), size, size, 1),
        )

        def load(i: int) -> None:
            array[i, :, :, 0] = read_png(paths[i], size, rows["sha256"].iat[i], bit_depth)

        # PNG decoding releases the GIL, so threads help.
        with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
            for _ in tqdm(
                pool.map(load, range(len(rows))),
                total=len(rows),
                mininterval=5,
                desc=f"pack {split}",
                unit="img",
            ):
                pass
        array.flush()
        failpoint("pack.images_loaded")
    failpoint("pack.before_labels")
    with atomic_path(labels_out) as tmp, open(tmp, "wb") as handle:
        np.save(handle, labels)
    write_json(classes_out, list(classes))
    counts = np.bincount(labels, minlength=len(classes))
    log.info("packed %d %s images: %s", len(rows), split, dict(zip(classes, counts.tolist())))
    return len(rows)
