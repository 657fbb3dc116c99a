"""DAG planning cost with folders of real images: a dry run as the folders grow.

Command:

    uv run python benchmarks/plan_real.py [--sizes 10 8000] [--repeat 3]

For each size, five class folders of `size` small PNGs each (written once, untimed) and a
config whose classes are those folders and no runs (so the data stage and ingest are
planned; with --evaluation also an evaluation set of the same folders, listing the images
twice) are dry-run as benchmarks/plan.py does:

    python -m snakemake --snakefile <repo>/Snakefile --directory <tmp> --configfile <cfg> -n --quiet

Planning lists every folder once (names, sizes, modification times) and plans one ingest job
per ingest.images_per_shard (--images-per-shard, default 2000 as in the schema) images, never
one per image. `snakemake --version` is the start-up
floor. Each command runs --repeat times, interleaved; the best counts. Target: 5 x 8 000 =
40 000 real images plan < 1 s slower than 5 x 10 = 50. One JSON line is appended to --results.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from common import add_results_argument, append_result, format_table, positive_int
from plan import SNAKEMAKE, dry_run_command, jobs_planned, timed

CLASSES = ("alpha", "beta", "gamma", "delta", "epsilon")
TARGET_ADDED_SECONDS = 1.0


def write_folders(root: Path, size: int) -> Path:
    """root/<class>/<i>.png, `size` per class: 32 x 32 noise PNGs (content is never read)."""
    from simtrain.data.png import encode_png

    rng = np.random.default_rng(size)
    data = [encode_png(rng.integers(0, 256, (32, 32), dtype=np.uint8)) for _ in range(16)]
    for name in CLASSES:
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(size):
            (folder / f"{i:06d}.png").write_bytes(data[i % len(data)])
    return root


def write_config(workdir: Path, images: Path, evaluation: bool, per_shard: int) -> Path:
    config = {
        "seed": 1,
        "image_size": 32,
        "ingest": {"images_per_shard": per_shard},
        "validation_fraction": 0.2,
        "classes": {name: {"folder": str(images / name)} for name in CLASSES},
        "evaluation": {"same": str(images)} if evaluation else {},
        "runs": {},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--sizes", type=positive_int, nargs="+", default=[10, 8000])
    parser.add_argument("--repeat", type=positive_int, default=3)
    parser.add_argument(
        "--images-per-shard", type=positive_int, default=2000, help="ingest.images_per_shard"
    )
    parser.add_argument(
        "--evaluation", action="store_true", help="plan the folders as an evaluation set too"
    )
    add_results_argument(parser)
    args = parser.parse_args(argv)
    if any(size < 2 for size in args.sizes):
        raise SystemExit("--sizes: a class folder needs at least 2 images to split")

    with tempfile.TemporaryDirectory(prefix="simtrain-plan-real-") as scratch:
        commands, jobs = {}, {}
        for size in args.sizes:
            workdir = Path(scratch) / f"size-{size}"
            images = write_folders(workdir / "images", size)
            configfile = write_config(workdir, images, args.evaluation, args.images_per_shard)
            commands[size] = dry_run_command(workdir, configfile)
            jobs[size] = jobs_planned(workdir, configfile)  # also warms the file cache
        times: dict[str, list[float]] = {"floor": [], **{str(s): [] for s in args.sizes}}
        for _ in range(args.repeat):
            times["floor"].append(timed([*SNAKEMAKE, "--version"]))
            for size in args.sizes:
                times[str(size)].append(timed(commands[size]))

    floor = min(times["floor"])
    best = {size: min(times[str(size)]) for size in args.sizes}
    classes = len(CLASSES)
    rows = [["snakemake --version (floor)", "-", "-", f"{floor:.2f}", "0.00", "-"]]
    for size in args.sizes:
        rows.append(
            [
                f"{classes} folders x {size}",
                classes * size,
                jobs[size] if jobs[size] is not None else "?",
                f"{best[size]:.2f}",
                f"{best[size] - floor:.2f}",
                f"{best[size] - best[args.sizes[0]]:+.2f}",
            ]
        )
    evaluation = ", the same folders as an evaluation set" if args.evaluation else ""
    print(
        f"snakemake -n --quiet, real-image folders{evaluation}, ingest.images_per_shard "
        f"{args.images_per_shard}, best of {args.repeat}"
    )
    headers = ["config", "images", "jobs", "seconds", "minus floor", f"vs {args.sizes[0]}"]
    print(format_table(headers, rows))
    verdicts = {}
    for size in args.sizes[1:]:
        added = best[size] - best[args.sizes[0]]
        name = (
            f"{classes * size} real images add < {TARGET_ADDED_SECONDS:g} s over "
            f"{classes * args.sizes[0]}"
        )
        verdicts[name] = {
            "added_seconds": added,
            "verdict": "PASS" if added < TARGET_ADDED_SECONDS else "MISS",
        }
        print(f"{name}: {added:+.2f} s -> {verdicts[name]['verdict']}")
    append_result(
        args.results,
        benchmark="plan_real",
        parameters={
            "sizes": args.sizes,
            "repeat": args.repeat,
            "classes": classes,
            "images_per_shard": args.images_per_shard,
            "evaluation_set": args.evaluation,
        },
        results={
            "floor_seconds": floor,
            "configs": {
                str(size): {
                    "images": classes * size,
                    "jobs": jobs[size],
                    "seconds": best[size],
                    "all_seconds": times[str(size)],
                }
                for size in args.sizes
            },
        },
        verdicts=verdicts,
    )
    print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
