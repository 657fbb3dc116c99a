"""DAG planning cost: wall time of a Snakemake dry run as the data set grows.

Command:

    uv run python benchmarks/plan.py [--sizes 10 8000 80000] [--repeat 3]

For each size, a config with the default config's classes, images_per_class = size,
images_per_shard = 500 and no training runs (so only the data stage is planned) is written to
an empty temporary working directory, and this is timed:

    python -m snakemake --snakefile <repo>/Snakefile --directory <tmp> --configfile <cfg> -n --quiet

`python -m snakemake --version` is timed too, as the start-up floor every command pays. Each
command runs --repeat times, interleaved; the best (shortest) time counts. The number of jobs
planned comes from one extra, untimed dry run with `--quiet rules`, which prints the job stats.
The plan-time class check (image 0 of every class is simulated) is included, as in real use.

With --keep-runs the config's runs are planned too (`--config config/full.yaml --keep-runs`:
its architectures and seed replicates); their `steps_per_epoch`, `validation_steps` and
`train_images` are dropped at every size, as 10 images per class cannot hold them and they do
not change the jobs planned.

Targets: planning the second size (5 x 8 000) adds < 1 s over the first (5 x 10), and the third
(5 x 80 000) stays roughly flat: < 1 s more than the second. One JSON line is appended to
--results.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import REPO_ROOT, add_results_argument, append_result, format_table, positive_int

IMAGES_PER_SHARD = 500
TARGET_ADDED_SECONDS = 1.0
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


SIZED_KEYS = ("steps_per_epoch", "validation_steps", "train_images")


def write_config(directory: Path, base: dict, images_per_class: int, keep_runs: bool) -> Path:
    config = {**base, "images_per_class": images_per_class, "images_per_shard": IMAGES_PER_SHARD}
    runs = base.get("runs", {}) if keep_runs else {}
    config["runs"] = {
        name: {key: value for key, value in settings.items() if key not in SIZED_KEYS}
        for name, settings in runs.items()
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def dry_run_command(workdir: Path, configfile: Path, *quiet: str) -> list[str]:
    return [
        *SNAKEMAKE,
        "--snakefile",
        str(REPO_ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "-n",
        "--quiet",
        *quiet,
    ]


def run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    run(command)
    return time.perf_counter() - start


def jobs_planned(workdir: Path, configfile: Path) -> int | None:
    """The 'total' row of Snakemake's job stats, or None if it cannot be found."""
    output = run(dry_run_command(workdir, configfile, "rules")).stdout
    match = re.search(r"^total\s+(\d+)\s*$", output, flags=re.MULTILINE)
    return int(match.group(1)) if match else None


def slurm_plugin_installed() -> bool:
    return importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=positive_int,
        nargs="+",
        default=[10, 8000, 80000],
        help="images per class of each planned config; targets compare the 1st/2nd/3rd",
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=3, help="timed runs per command; the best counts"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO_ROOT / "config" / "config.yaml",
        help="config whose classes (and other keys) the planned configs keep",
    )
    parser.add_argument(
        "--keep-runs",
        action="store_true",
        help="plan the config's runs too (without their sized keys), not only the data stage",
    )
    add_results_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    base = yaml.safe_load(args.config.read_text())
    classes = len(base["classes"])
    if any(size < 2 for size in args.sizes):
        raise SystemExit("--sizes: images_per_class must be >= 2 (the config schema's minimum)")

    with tempfile.TemporaryDirectory(prefix="simtrain-plan-") as scratch:
        commands, jobs = {}, {}
        for size in args.sizes:
            workdir = Path(scratch) / f"size-{size}"
            workdir.mkdir()
            configfile = write_config(workdir, base, size, args.keep_runs)
            commands[size] = dry_run_command(workdir, configfile)
            jobs[size] = jobs_planned(workdir, configfile)  # also warms the file cache
        floor_command = [*SNAKEMAKE, "--version"]
        times: dict[str, list[float]] = {"floor": [], **{str(size): [] for size in args.sizes}}
        for _ in range(args.repeat):
            times["floor"].append(timed(floor_command))
            for size in args.sizes:
                times[str(size)].append(timed(commands[size]))

    floor = min(times["floor"])
    best = {size: min(times[str(size)]) for size in args.sizes}
    rows = [["snakemake --version (floor)", "-", "-", f"{floor:.2f}", "0.00"]]
    for size in args.sizes:
        rows.append(
            [
                f"{classes} x {size}",
                classes * size,
                jobs[size] if jobs[size] is not None else "?",
                f"{best[size]:.2f}",
                f"{best[size] - floor:.2f}",
            ]
        )
    planned_runs = (
        f"{len(base.get('runs', {}))} from {args.config.name}" if args.keep_runs else "{}"
    )
    print(
        f"snakemake -n --quiet, images_per_shard {IMAGES_PER_SHARD}, runs: {planned_runs}, "
        f"best of {args.repeat}"
    )
    print(format_table(["config", "images", "jobs", "seconds", "minus floor"], rows))

    verdicts = {}
    pairs = list(zip(args.sizes, args.sizes[1:]))[:2]
    for number, (smaller, larger) in enumerate(pairs):
        added = best[larger] - best[smaller]
        name = f"{classes} x {larger} adds < {TARGET_ADDED_SECONDS:g} s over {classes} x {smaller}"
        verdict = "PASS" if added < TARGET_ADDED_SECONDS else "MISS"
        verdicts[name] = {"added_seconds": added, "verdict": verdict}
        label = "planning cost" if number == 0 else "stays flat"
        print(f"{label}: {name}: {added:+.2f} s -> {verdict}")

    append_result(
        args.results,
        benchmark="plan",
        parameters={
            "sizes": args.sizes,
            "repeat": args.repeat,
            "config": str(args.config),
            "keep_runs": args.keep_runs,
            "classes": classes,
            "images_per_shard": IMAGES_PER_SHARD,
            # The Slurm executor plugin, when installed, is imported at every start-up.
            "slurm_plugin_installed": slurm_plugin_installed(),
        },
        results={
            "floor_seconds": floor,
            "configs": {
                str(size): {
                    "images": classes * size,
                    "jobs": jobs[size],
                    "seconds": best[size],
                    "minus_floor": best[size] - floor,
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
