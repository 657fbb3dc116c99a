"""Deterministic stratified train/validation split by hard links, with a hashed manifest."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from simtrain.common.failpoints import failpoint
from simtrain.common.files import atomic_path, write_tsv
from simtrain.data.simulate import class_key

# A shard's table of the real files its PNGs came from (written by simtrain.data.ingest).
SOURCES = "sources.tsv"

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")
# Distinguishes the split's random stream from the images' streams of the same seed.
_SPLIT_STREAM = 0x5B11


class DuplicateImageError(ValueError):
    """The same image content landed in both splits: validation would leak into training."""


def validation_count(n_images: int, fraction: float) -> int:
    """Validation images of one class: round(n * fraction), but at least one of each split."""
    if n_images < 2:
        raise ValueError(f"a class needs at least 2 images to split, got {n_images}")
    return min(max(round(n_images * fraction), 1), n_images - 1)


def split_indices(
    indices: Iterable[int], fraction: float, seed: int, class_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) image indices of one class, sorted; depends only on its arguments."""
    indices = np.sort(np.fromiter(indices, dtype=np.int64))
    rng = np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(class_key(class_name), _SPLIT_STREAM))
    )
    chosen = rng.permutation(len(indices))[: validation_count(len(indices), fraction)]
    is_validation = np.zeros(len(indices), dtype=bool)
    is_validation[chosen] = True
    return indices[~is_validation], indices[is_validation]


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError as error:
        # Some network file systems have no hard links; a copy is still correct.
        if error.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
            raise
        shutil.copy2(source, target)


def collect_images(shard_dirs: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per PNG of the shards: source, class (the shard's parent folder) and index;
    for ingested real images also the original file and its sha256 (from sources.tsv)."""
    rows = []
    for shard_dir in map(Path, shard_dirs):
        class_name = shard_dir.parent.name
        sources = shard_dir / SOURCES
        originals = (
            pd.read_csv(sources, sep="\t", dtype={"source": str}, keep_default_na=False)
            .set_index("index")
            .to_dict("index")
            if sources.is_file()
            else {}
        )
        for png in sorted(shard_dir.glob("*.png")):
            index = int(png.stem.rsplit("-", 1)[1])
            row = {"source": png, "class": class_name, "index": index}
            if originals:
                row |= {
                    "original": originals[index]["source"],
                    "original_sha256": originals[index]["source_sha256"],
                }
            rows.append(row)
    if not rows:
        raise ValueError("no images found in the shard folders")
    images = pd.DataFrame(rows).sort_values(["class", "index"], ignore_index=True)
    duplicated = images.duplicated(["class", "index"])
    if duplicated.any():
        first = images[duplicated].iloc[0]
        raise ValueError(f"image {first['index']} of class {first['class']!r} is in two shards")
    return images


def assign_splits(images: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """The split name of each row of `images`, stratified by class."""
    split = pd.Series("train", index=images.index)
    for class_name, rows in images.groupby("class", sort=True):
        _, validation = split_indices(rows["index"], fraction, seed, str(class_name))
        split[rows.index[rows["index"].isin(validation)]] = "validation"
    return split


def check_disjoint(manifest: pd.DataFrame) -> None:
    by_hash = manifest.groupby("sha256")["split"].nunique()
    leaked = by_hash[by_hash > 1].index
    if len(leaked):
        twins = manifest["sha256"].isin(leaked)
        if "source" in manifest and manifest.loc[twins, "source"].ne("").any():
            column, cause = "source", "these real images are identical after conversion; remove "
            cause += "the duplicates from the class folders"
        else:
            column, cause = "path", "the simulator returned identical images (is its output "
            cause += "independent of the rng?)"
        paths = manifest.loc[twins, column].head(6).tolist()
        raise DuplicateImageError(
            f"{len(leaked)} image(s) appear in both train and validation, e.g. {paths}; {cause}"
        )
    repeats = manifest["sha256"].duplicated().sum()
    if repeats:
        log.warning("%d image(s) are repeated within a split", repeats)


def split_dataset(
    shard_dirs: Iterable[str | os.PathLike],
    *,
    images_root: str | os.PathLike,
    manifest_path: str | os.PathLike,
    validation_fraction: float,
    seed: int,
) -> pd.DataFrame:
    """Hard-link every shard's image into images_root/{train,validation}/{class}/.

    Writes the manifest (path relative to images_root, class, split, index, sha256; with real
    classes also source and source_sha256, the original file and its hash) and
    returns it. Nothing is published unless every image is linked and the splits are disjoint.
    """
    images_root = Path(images_root)
    images = collect_images(shard_dirs)
    images["split"] = assign_splits(images, validation_fraction, seed)
    hashing = tqdm(images["source"], desc="sha256", unit="image", mininterval=5)
    images["sha256"] = [file_sha256(source) for source in hashing]
    images["path"] = [
        f"{split}/{klass}/{Path(source).name}"
        for split, klass, source in zip(images["split"], images["class"], images["source"])
    ]
    manifest = images[["path", "class", "split", "index", "sha256"]].copy()
    if "original" in images:
        # Real images: the file each came from (relative to its class folder) and its hash;
        # empty for simulated classes.
        manifest["source"] = images["original"].fillna("")
        manifest["source_sha256"] = images["original_sha256"].fillna("")
    check_disjoint(manifest)

    with (
        atomic_path(images_root / SPLITS[0]) as train,
        atomic_path(images_root / SPLITS[1]) as validation,
    ):
        targets = {"train": train, "validation": validation}
        for class_name in images["class"].unique():
            for target in targets.values():
                (target / class_name).mkdir(parents=True)
        for source, split, klass in zip(images["source"], images["split"], images["class"]):
            _link(Path(source), targets[split] / klass / Path(source).name)
        failpoint("split.linked")
    failpoint("split.before_manifest")
    write_tsv(manifest_path, manifest)

    counts = manifest.groupby(["class", "split"]).size().unstack("split", fill_value=0)
    log.info("split %d images:\n%s", len(manifest), counts.to_string())
    return manifest
