"""The whole workflow from clean: wall time, and where it goes, per rule.

Command:

    uv run python benchmarks/end_to_end.py [--config config/config.yaml] [--cores 8]

Runs `snakemake --cores N` on the config in an empty temporary working directory, times it,
then sums the per-job Snakemake benchmark files (results/benchmarks/) by rule: jobs, total
and longest job seconds, share of the summed job time, and peak memory. For the simulate
and train rules it adds images/s over the whole job (start-up and validation included).
Target for the default config: <= 15 min on 2 cores.
One JSON line is appended to --results.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, add_results_argument, append_result, format_table, positive_int

TARGET_SECONDS = 15 * 60


def rule_of(benchmark_file: Path, root: Path) -> str:
    """results/benchmarks/<stage>[/<run>][/<job>].tsv -> the stage (simulate, train <run>, ...);
    a run's seed replicates (train/<run>/seed-<k>.tsv) add up in one stage."""
    relative = benchmark_file.relative_to(root).with_suffix("")
    if relative.parts[0] == "train":
        return f"train {relative.parts[1]}"
    return relative.parts[0]


def summarise(results: Path) -> pd.DataFrame:
    root = results / "benchmarks"
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        rows.append(
            {
                "stage": rule_of(path, root),
                "seconds": float(frame["s"].iloc[0]),
                "max_rss_mb": float(frame["max_rss"].iloc[0]),
            }
        )
    jobs = pd.DataFrame(rows)
    table = jobs.groupby("stage", sort=False).agg(
        jobs=("seconds", "size"),
        seconds=("seconds", "sum"),
        longest=("seconds", "max"),
        max_rss_mb=("max_rss_mb", "max"),
    )
    table["share"] = table["seconds"] / table["seconds"].sum()
    return table.sort_values("seconds", ascending=False)


def images_per_second(stage: str, seconds: float, config: dict, results: Path) -> str:
    if stage == "simulate":
        images = config["images_per_class"] * len(config["classes"])
        return f"{images / seconds:.0f}"
    if stage.startswith("train "):
        histories = sorted((results / "runs" / stage.split(" ", 1)[1]).glob("seed-*/history.tsv"))
        if histories:
            seen = sum(pd.read_csv(h, sep="\t")["train_images_seen"].sum() for h in histories)
            # Training images over the whole jobs: start-up and validation included.
            return f"{seen / seconds:.1f}"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config" / "config.yaml")
    parser.add_argument("--cores", type=positive_int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    add_results_argument(parser)
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text())

    workdir = Path(tempfile.mkdtemp(prefix="simtrain-e2e-"))
    try:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "--snakefile",
                str(REPO_ROOT / "Snakefile"),
                "--directory",
                str(workdir),
                "--cores",
                str(args.cores),
                "--configfile",
                str(args.config.resolve()),
                "--quiet",
                "all",
            ],
            check=True,
        )
        wall = time.perf_counter() - start
        results = workdir / "results"
        table = summarise(results)
        rows = [
            [
                stage,
                int(row.jobs),
                f"{row.seconds:.1f}",
                f"{row.longest:.1f}",
                f"{100 * row.share:.0f} %",
                f"{row.max_rss_mb:.0f}",
                images_per_second(stage, row.seconds, config, results),
            ]
            for stage, row in table.iterrows()
        ]
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\nend to end: {args.config.name}, --cores {args.cores}: {wall:.0f} s wall "
        f"({wall / 60:.1f} min)"
    )
    print(
        format_table(
            ["stage", "jobs", "job s", "longest s", "share", "max RSS MB", "images/s"], rows
        )
    )
    passed = wall <= TARGET_SECONDS
    print(f"<= 15 min: {'PASS' if passed else 'MISS'}")
    append_result(
        args.results,
        benchmark="end_to_end",
        parameters={"config": str(args.config), "cores": args.cores},
        results={
            "wall_seconds": round(wall, 1),
            "stages": table.round(2).reset_index().to_dict("records"),
        },
        verdicts={"within 15 min": passed},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
