"""Glue between run folders and the plots/comparison: what the report rules call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from simtrain.common.failpoints import failpoint
from simtrain.data.arrays import PackedSplit
from simtrain.diagnosis.fixes import read_fix_plan
from simtrain.reporting.comparison import compare_runs, group_replicates, learning_curve
from simtrain.reporting.comparison_markdown import write_comparison
from simtrain.reporting.plots import (
    plot_batches,
    plot_best_accuracy,
    plot_confusion,
    plot_curves,
    plot_learning_curve,
    plot_samples,
    plot_validation_accuracy,
)
from simtrain.reporting.run_results import load_run
from simtrain.reporting.verification import (
    RunGroup,
    decide,
    plot_before_after,
    verify_fixes,
    write_verification,
)


def noise_band(diagnostics: dict) -> dict[str, float] | None:
    """Half-widths of the expected validation noise, from the sampling-noise finding."""
    for finding in diagnostics.get("findings", []):
        if finding["code"] == "VALIDATION_SAMPLING_NOISE":
            evidence = finding["evidence"]
            band = {
                metric: evidence[f"{metric}_expected_noise"]
                for metric in ("val_loss", "val_accuracy")
                if evidence.get(f"{metric}_expected_noise") is not None
            }
            return band or None
    return None


def plot_run_dir(run_dir: str | os.PathLike, *, curves, batches, confusion) -> None:
    result = load_run(run_dir)
    band = noise_band(result.diagnostics or {})
    plot_curves(result.history, curves, noise_band=band, title=result.run)
    plot_batches(result.batches, batches, title=result.run)
    plot_confusion(result.predictions, result.classes, confusion, title=result.run)


def plot_split_samples(packed_dir: str | os.PathLike, path, *, per_class: int, seed: int):
    split = PackedSplit.load(packed_dir)
    plot_samples(
        split.images,
        split.labels,
        split.classes,
        path,
        per_class=per_class,
        seed=seed,
        title=f"{Path(packed_dir).name} samples",
    )


def compare_run_dirs(
    run_dirs: Sequence[str | os.PathLike],
    *,
    tsv,
    markdown,
    accuracy_plot,
    best_plot,
    learning_curve_plot,
    fix_tables: Sequence[str | os.PathLike] = (),
) -> None:
    results = [load_run(d) for d in run_dirs]
    verified = [
        pd.read_csv(path, sep="\t").assign(run=Path(path).parent.name) for path in fix_tables
    ]
    fixes = pd.concat(verified, ignore_index=True) if verified else None
    symptom_p = [] if fixes is None else fixes["symptom_p"].tolist()
    # One Holm family for everything comparison.md tests: the baseline tests and the fixes'.
    table = compare_runs(results, other_tests=symptom_p)
    if fixes is not None:
        fixes["symptom_p_holm"] = table.attrs["other_p_holm"]
        decided = [decide(row, row["symptom_p_holm"]) for _, row in fixes.iterrows()]
        fixes["verdict"] = [verdict for verdict, _ in decided]
        fixes["reason"] = [reason for _, reason in decided]
    write_comparison(table, tsv, markdown, fixes)
    failpoint("compare.between_files")
    histories = {
        run: [r.history for r in group if r.history is not None]
        for run, group in group_replicates(results).items()
    }
    plot_validation_accuracy(histories, accuracy_plot)
    plot_best_accuracy(table, best_plot)
    plot_learning_curve(learning_curve(results), learning_curve_plot)


def verify_run_dirs(
    plan_path: str | os.PathLike,
    run_dirs: Sequence[str | os.PathLike],
    *,
    markdown,
    tsv,
    curves,
) -> None:
    """fixes.md/.tsv/.png of one verifying run, from its and its siblings' replicate folders."""
    plan = read_fix_plan(plan_path)
    groups = {
        run: RunGroup(run, group)
        for run, group in group_replicates([load_run(d) for d in run_dirs]).items()
    }
    table = verify_fixes(plan, groups)
    write_verification(plan, table, markdown, tsv)
    plot_before_after(plan, groups, curves)
