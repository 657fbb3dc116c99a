"""Glue between run folders and the plots/comparison: what the report rules call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from simtrain.common.failpoints import failpoint
from simtrain.data.arrays import PackedSplit
from simtrain.reporting.comparison import compare_runs, learning_curve, write_comparison
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
) -> None:
    results = [load_run(d) for d in run_dirs]
    table = compare_runs(results)
    write_comparison(table, tsv, markdown)
    failpoint("compare.between_files")
    plot_validation_accuracy({r.run: r.history for r in results}, accuracy_plot)
    plot_best_accuracy(table, best_plot)
    plot_learning_curve(learning_curve(results), learning_curve_plot)
