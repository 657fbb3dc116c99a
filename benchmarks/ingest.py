"""Ingest rate of real images: simtrain's ingest against keras.utils.image_dataset_from_directory
reading the same folder.

Command:

    uv run python benchmarks/ingest.py [--images 20000] [--width 160] [--height 120] [--size 64]

A labelled folder of --images photographs' crops (4 classes, from the colour photographs
scikit-image ships; width x height, half PNG, half JPEG: the formats both read) is written
once, untimed, and read by every method into --size x --size greyscale images, the oblong
crops cut to their centred square (Keras' crop_to_aspect_ratio; ingest.aspect: crop):

- keras: `image_dataset_from_directory(color_mode="grayscale", crop_to_aspect_ratio=True,
  batch_size=128, shuffle=False)`, every batch pulled and turned into numpy (bilinear resize,
  not anti-aliased: Keras' default), and the same with interpolation="lanczos3" (our filter,
  still not anti-aliased);
- ours, one job: `simtrain.data.ingest.ingest_labelled_set` into a memory-mapped .npy
  (sha256 of every file, Lanczos anti-aliased resize), with 1 and --threads threads, as an
  evaluation set is ingested;
- ours, sharded: `ingest_shard` jobs of --images-per-shard images writing PNG shards, run by
  --threads worker processes side by side, as Snakemake runs a folder class's jobs.

Each method runs --repeat times after one untimed warm-up read of the files (page cache);
the best counts. One JSON line is appended to --results.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from common import add_results_argument, append_result, format_table, positive_int

PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket")  # one class each
BATCH = 128


def write_folder(root: Path, images: int, width: int, height: int) -> Path:
    """root/<photograph>/<i>.png|jpg: random crops, resized to width x height."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(0)
    per_class = -(-images // len(PHOTOGRAPHS))
    for name in PHOTOGRAPHS:
        photo = Image.fromarray(getattr(data, name)())
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            side = int(rng.integers(100, min(photo.size) + 1))
            left = int(rng.integers(0, photo.size[0] - side + 1))
            top = int(rng.integers(0, photo.size[1] - side + 1))
            crop = photo.crop((left, top, left + side, top + side)).resize((width, height))
            suffix = ".png" if i % 2 else ".jpg"
            crop.save(folder / f"{i:06d}{suffix}", **({"quality": 90} if i % 2 == 0 else {}))
    return root


def keras_reader(folder: Path, size: int, interpolation: str = "bilinear") -> int:
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        folder,
        color_mode="grayscale",
        image_size=(size, size),
        crop_to_aspect_ratio=True,
        interpolation=interpolation,
        batch_size=BATCH,
        shuffle=False,
        verbose=False,
    )
    return sum(len(np.asarray(images)) for images, _ in dataset)


def ours_one_job(folder: Path, size: int, threads: int, out: Path) -> int:
    from simtrain.data.images import Conversion
    from simtrain.data.ingest import ingest_labelled_set

    files = ingest_labelled_set(
        folder,
        classes=list(PHOTOGRAPHS),
        conversion=Conversion(size, aspect="crop"),
        out_dir=out,
        key="benchmark",
        threads=threads,
    )
    return len(files)


def _one_shard(job: tuple) -> int:
    from simtrain.data.folders import fingerprint, image_entries
    from simtrain.data.images import Conversion
    from simtrain.data.ingest import ingest_shard

    folder, klass, shard, per_shard, size, out = job
    entries = image_entries(folder, "benchmark")
    return ingest_shard(
        out / klass / f"shard-{shard}",
        class_name=klass,
        folder=folder,
        planned_fingerprint=fingerprint(entries),
        shard=shard,
        images_per_shard=per_shard,
        conversion=Conversion(size, aspect="crop"),
    )


def ours_sharded(folder: Path, size: int, threads: int, per_shard: int, out: Path) -> int:
    jobs = []
    for klass in PHOTOGRAPHS:
        count = len(os.listdir(folder / klass))
        jobs += [
            (folder / klass, klass, shard, per_shard, size, out)
            for shard in range(-(-count // per_shard))
        ]
    with ProcessPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(_one_shard, jobs))


def main(argv: list[str] | None = None) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--images", type=positive_int, default=20000)
    parser.add_argument("--width", type=positive_int, default=160)
    parser.add_argument("--height", type=positive_int, default=120)
    parser.add_argument("--size", type=positive_int, default=64, help="output side in pixels")
    parser.add_argument("--threads", type=positive_int, default=cores, help="threads/processes")
    parser.add_argument("--images-per-shard", type=positive_int, default=500)
    parser.add_argument("--repeat", type=positive_int, default=1)
    add_results_argument(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401 - imported untimed: start-up is not reading

    with tempfile.TemporaryDirectory(prefix="simtrain-ingest-") as scratch:
        scratch = Path(scratch)
        folder = write_folder(scratch / "images", args.images, args.width, args.height)
        total = sum(len(os.listdir(folder / k)) for k in PHOTOGRAPHS)
        for path in folder.rglob("*"):  # warm the page cache: every method reads from memory
            if path.is_file():
                path.read_bytes()
        methods = {
            "keras image_dataset_from_directory": lambda k: keras_reader(folder, args.size),
            "keras, interpolation lanczos3": lambda k: keras_reader(folder, args.size, "lanczos3"),
            "ours, one job, 1 thread (to .npy)": lambda k: ours_one_job(
                folder, args.size, 1, scratch / f"set1-{k}"
            ),
            f"ours, one job, {args.threads} threads (to .npy)": lambda k: ours_one_job(
                folder, args.size, args.threads, scratch / f"set-{k}"
            ),
            f"ours, sharded, {args.threads} processes (to PNG shards)": lambda k: ours_sharded(
                folder, args.size, args.threads, args.images_per_shard, scratch / f"shards-{k}"
            ),
        }
        seconds: dict[str, float] = {}
        for name, method in methods.items():
            best = float("inf")
            for k in range(args.repeat):
                start = time.perf_counter()
                read = method(k)
                best = min(best, time.perf_counter() - start)
                if read != total:
                    raise RuntimeError(f"{name}: read {read} of {total} images")
            seconds[name] = best

    keras_rate = total / seconds["keras image_dataset_from_directory"]
    rows = [
        [name, total, f"{s:.1f}", f"{total / s:.0f}", f"{total / s / keras_rate:.2f}x"]
        for name, s in seconds.items()
    ]
    print(
        f"{total} images {args.width}x{args.height} (half PNG, half JPEG) -> {args.size}x"
        f"{args.size} greyscale, centred crop; best of {args.repeat}"
    )
    print(format_table(["method", "images", "seconds", "images/s", "vs keras"], rows))
    append_result(
        args.results,
        benchmark="ingest",
        parameters={k: v for k, v in vars(args).items() if k != "results"} | {"images": total},
        results={
            "seconds": seconds,
            "images_per_second": {n: total / s for n, s in seconds.items()},
        },
    )
    print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
