"""Simulate one shard of a class: per-image seeds, contract checks, fast PNG writing."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from simtrain.common.failpoints import failpoint
from simtrain.common.files import atomic_path
from simtrain.data.png import write_png
from simtrain.data.simulators import resolve_simulator, to_uint8

log = logging.getLogger(__name__)


def class_key(class_name: str) -> int:
    """A stable 64-bit integer for a class name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(class_name.encode()).digest()[:8], "little")


def image_rng(seed: int, class_name: str, index: int) -> np.random.Generator:
    """The generator for one image, keyed by (seed, class, index) only.

    So an image does not depend on shard size, job order or core count, and any single
    image can be regenerated on its own.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(class_key(class_name), index))
    return np.random.default_rng(sequence)


def shard_count(images_per_class: int, images_per_shard: int) -> int:
    return math.ceil(images_per_class / images_per_shard)


def shard_range(shard: int, images_per_class: int, images_per_shard: int) -> range:
    """Image indices of one shard."""
    if not 0 <= shard < shard_count(images_per_class, images_per_shard):
        raise ValueError(f"shard {shard} is out of range for {images_per_class} images")
    start = shard * images_per_shard
    return range(start, min(start + images_per_shard, images_per_class))


def image_name(class_name: str, index: int) -> str:
    return f"{class_name}-{index:06d}.png"


def simulate_image(
    simulator: Callable[..., Any],
    *,
    class_name: str,
    simulator_name: str,
    params: Mapping[str, Any],
    seed: int,
    index: int,
    size: int,
) -> np.ndarray:
    """One image as a uint8 size x size array, checked against the output contract."""
    try:
        raw = simulator(image_rng(seed, class_name, index), size, **params)
    except Exception as error:
        raise ValueError(
            f"class {class_name!r} (simulator {simulator_name!r}) failed on image {index} "
            f"with params {dict(params)}: {type(error).__name__}: {error}"
        ) from error
    return to_uint8(raw, class_name=class_name, simulator=simulator_name, size=size)


def write_shard(
    out_dir: str | os.PathLike,
    *,
    class_name: str,
    simulator: str,
    params: Mapping[str, Any],
    seed: int,
    size: int,
    indices: range,
    search_path: str | os.PathLike | None = None,
) -> int:
    """Write the PNGs of one shard into `out_dir`, which appears only once all are written."""
    function = resolve_simulator(simulator, search_path)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for index in tqdm(
            indices,
            desc=f"{class_name} {indices.start}-{indices.stop - 1}",
            mininterval=5,
            unit="img",
        ):
            image = simulate_image(
                function,
                class_name=class_name,
                simulator_name=simulator,
                params=params,
                seed=seed,
                index=index,
                size=size,
            )
            write_png(tmp / image_name(class_name, index), image)
            if index == indices.start + 1:
                failpoint("simulate.mid_shard")
    log.info("class %s: wrote %d images to %s", class_name, len(indices), Path(out_dir))
    return len(indices)
