"""Plots drawn from one folder: a run's curves, batches and confusion (report_run), a split's
sample grid (plot_samples). Apart from `artifacts`, the comparison's glue, so that editing the
comparison reruns neither rule."""

from __future__ import annotations

import os
from pathlib import Path

from simtrain.data.arrays import PackedSplit
from simtrain.reporting.plots import plot_batches, plot_confusion, plot_curves, plot_samples
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
