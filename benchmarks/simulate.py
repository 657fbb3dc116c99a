"""Images per second, per core, for simulate + write: simtrain's writer against a naive one.

Command:

    uv run python benchmarks/simulate.py [--images 600] [--size 256] [--repeat 3]

Measured in this one process, with BLAS limited to one thread (so the numbers are per core), on a
mix of the classes in config/config.yaml (or --config), the images split evenly between them:

- "naive": simtrain.data.simulate.simulate_image for each image, then `skimage.io.imsave` with its
  default settings, as a user without our writer would do it;
- "simtrain": the workflow's real code path, `simtrain.data.simulate.write_shard`, one shard
  per class;
- "simulate only": the simulate_image calls alone, writing nothing: where the time goes.

All three make the same uint8 images (same seeds, same `to_uint8` conversion); afterwards a few
PNGs from both writers are read back and compared pixel for pixel. The methods run interleaved,
--repeat times, into fresh temporary directories; the best (shortest) time of each counts.
"vs naive" is naive seconds / method seconds; the target is simtrain >= 4x naive.
One JSON line is appended to --results.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import skimage.io
import yaml
from common import REPO_ROOT, add_results_argument, append_result, format_table, positive_int
from PIL import Image
from threadpoolctl import threadpool_limits

from simtrain.data.simulate import image_name, simulate_image, write_shard
from simtrain.data.simulators import resolve_simulator

TARGET_RATIO = 4.0
CHECKED_PER_CLASS = 3


@dataclass(frozen=True)
class ClassSpec:
    name: str
    simulator: str
    params: dict[str, Any]
    indices: range


@dataclass(frozen=True)
class Method:
    label: str
    run: Callable[[ClassSpec, Path], None]  # simulate (and write) one class into a directory


def load_classes(config_path: Path, images: int) -> tuple[int, list[ClassSpec]]:
    """The config's seed and classes, with `images` split as evenly as possible between them."""
    config = yaml.safe_load(config_path.read_text())
    classes = config["classes"]
    if images < len(classes):
        raise ValueError(f"--images must be at least the number of classes ({len(classes)})")
    per_class, extra = divmod(images, len(classes))
    specs = [
        ClassSpec(
            name=name,
            simulator=spec["simulator"],
            params=spec.get("params", {}),
            indices=range(per_class + (i < extra)),
        )
        for i, (name, spec) in enumerate(classes.items())
    ]
    return config["seed"], specs


def make_methods(seed: int, size: int) -> list[Method]:
    def images(spec: ClassSpec):
        simulator = resolve_simulator(spec.simulator)
        for index in spec.indices:
            yield (
                index,
                simulate_image(
                    simulator,
                    class_name=spec.name,
                    simulator_name=spec.simulator,
                    params=spec.params,
                    seed=seed,
                    index=index,
                    size=size,
                ),
            )

    def naive(spec: ClassSpec, out: Path) -> None:
        out.mkdir(parents=True)
        for index, image in images(spec):
            skimage.io.imsave(out / image_name(spec.name, index), image)

    def simtrain(spec: ClassSpec, out: Path) -> None:
        write_shard(
            out,
            class_name=spec.name,
            simulator=spec.simulator,
            params=spec.params,
            seed=seed,
            size=size,
            indices=spec.indices,
        )

    def simulate_only(spec: ClassSpec, out: Path) -> None:
        for _ in images(spec):
            pass

    return [
        Method("naive: simulate + skimage.io.imsave", naive),
        Method("simtrain: write_shard", simtrain),
        Method("simulate only (no write)", simulate_only),
    ]


def directory_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def same_pixels(specs: list[ClassSpec], first: Path, second: Path) -> tuple[bool, int]:
    """Whether a sample of images is identical in both writers' outputs, and the sample size."""
    checked = 0
    for spec in specs:
        for index in spec.indices[:CHECKED_PER_CLASS]:
            name = image_name(spec.name, index)
            a = np.asarray(Image.open(first / spec.name / name))
            b = np.asarray(Image.open(second / spec.name / name))
            if a.dtype != np.uint8 or not np.array_equal(a, b):
                return False, checked + 1
            checked += 1
    return True, checked


def measure(
    methods: list[Method], specs: list[ClassSpec], repeat: int, scratch: Path
) -> tuple[dict[str, dict[str, list[float]]], dict[str, int], bool, int]:
    """Seconds per method, class and repeat; bytes written per method; the pixel check."""
    seconds = {m.label: {s.name: [] for s in specs} for m in methods}
    written: dict[str, int] = {}
    identical, checked = True, 0
    for attempt in range(-1, repeat):  # attempt -1 warms up imports and caches, untimed
        root = scratch / f"attempt{attempt}"
        for method_number, method in enumerate(methods):
            for spec in specs:
                work = spec if attempt >= 0 else dataclasses.replace(spec, indices=range(1))
                out = root / str(method_number) / spec.name
                start = time.perf_counter()
                method.run(work, out)
                elapsed = time.perf_counter() - start
                if attempt >= 0:
                    seconds[method.label][spec.name].append(elapsed)
            if attempt == 0:
                written[method.label] = directory_bytes(root / str(method_number))
        if attempt == 0:
            identical, checked = same_pixels(specs, root / "0", root / "1")
        shutil.rmtree(root)
    return seconds, written, identical, checked


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--images", type=positive_int, default=600, help="images per method")
    parser.add_argument("--size", type=positive_int, default=256, help="image side in pixels")
    parser.add_argument(
        "--repeat", type=positive_int, default=3, help="timed runs per method; the best counts"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO_ROOT / "config" / "config.yaml",
        help="workflow config whose seed and classes are simulated",
    )
    add_results_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    seed, specs = load_classes(args.config, args.images)
    methods = make_methods(seed, args.size)
    naive, simtrain, simulate_only = (m.label for m in methods)

    # One BLAS thread: per-core numbers. Writer warnings (low contrast) and tqdm bars are muted
    # for every method alike.
    with (
        threadpool_limits(limits=1),
        tempfile.TemporaryDirectory(prefix="simtrain-bench-") as scratch,
        warnings.catch_warnings(),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        seconds, written, identical, checked = measure(methods, specs, args.repeat, Path(scratch))

    best = {  # the best repeat as a whole, not the sum of per-class bests
        label: min(sum(run) for run in zip(*per_class.values()))
        for label, per_class in seconds.items()
    }
    ratio = {label: best[naive] / best[label] for label in best}
    verdict = "PASS" if ratio[simtrain] >= TARGET_RATIO else "MISS"

    rows = []
    for label in (naive, simtrain, simulate_only):
        megabytes = f"{written[label] / 1e6:.1f}" if written.get(label) else "-"
        target = f">= {TARGET_RATIO:g}x {verdict}" if label == simtrain else ""
        rows.append(
            [
                label,
                args.images,
                f"{best[label]:.3f}",
                f"{args.images / best[label]:.1f}",
                f"{1e3 * best[label] / args.images:.2f}",
                megabytes,
                f"{ratio[label]:.2f}x",
                target,
            ]
        )
    print(
        f"simulate + write, {args.size}x{args.size}, one process, one BLAS thread, "
        f"best of {args.repeat}; classes from {args.config.name}"
    )
    print(
        format_table(
            ["method", "images", "seconds", "images/s", "ms/image", "MB", "vs naive", "target"],
            rows,
        )
    )

    class_rows = []
    for spec in specs:
        per_image = {
            label: 1e3 * min(seconds[label][spec.name]) / len(spec.indices) for label in seconds
        }
        class_rows.append(
            [spec.name, spec.simulator, len(spec.indices)]
            + [f"{per_image[label]:.2f}" for label in (simulate_only, simtrain, naive)]
        )
    print()
    print(
        format_table(
            ["class", "simulator", "images", "simulate ms", "simtrain ms", "naive ms"],
            class_rows,
        )
    )
    simulate_share = best[simulate_only] / best[simtrain]
    print(
        f"\nsimtrain time: {simulate_share:.0%} simulating, {1 - simulate_share:.0%} encoding "
        f"and writing PNGs (with shard bookkeeping).\n"
        f"A writer costing nothing would be {ratio[simulate_only]:.2f}x naive."
    )
    print(
        f"pixels identical in both writers' PNGs: {'yes' if identical else 'NO'} "
        f"({checked} images checked)"
    )

    append_result(
        args.results,
        benchmark="simulate",
        parameters={
            "images": args.images,
            "size": args.size,
            "repeat": args.repeat,
            "config": str(args.config),
            "classes": {spec.name: spec.simulator for spec in specs},
            "blas_threads": 1,
        },
        results={
            label: {
                "seconds": best[label],
                "images_per_second": args.images / best[label],
                "bytes_written": written.get(label, 0),
                "ratio_vs_naive": ratio[label],
                "ms_per_image_by_class": {
                    spec.name: 1e3 * min(seconds[label][spec.name]) / len(spec.indices)
                    for spec in specs
                },
            }
            for label in best
        },
        verdicts={
            f"simtrain >= {TARGET_RATIO:g}x naive": verdict,
            "pixels_identical": identical,
        },
    )
    print(f"appended to {args.results}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
