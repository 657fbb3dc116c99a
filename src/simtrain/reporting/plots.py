"""Figures for runs and their comparison; every function writes one PNG atomically.

Figures are drawn with pyplot on the Agg backend (no display on cluster nodes) and closed after
saving, so that a report rule drawing dozens of them does not accumulate memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402
from sklearn.metrics import confusion_matrix

from simtrain.common.files import atomic_path  # noqa: E402

DPI = 100
# Rolling median over this many batches: wide enough to smooth mini-batch scatter, narrow
# enough to follow the loss within one short epoch.
BATCH_MEDIAN_WINDOW = 25


def save_figure(figure: plt.Figure, path: str | os.PathLike) -> None:
    """Save to a temporary sibling and rename onto `path`; always close the figure."""
    try:
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=DPI, format="png")
    finally:
        plt.close(figure)


def _interval_errors(values: np.ndarray, low: pd.Series, high: pd.Series) -> np.ndarray:
    """Error-bar lengths (2, n); clipped at 0 because a Wilson bound can round past the value."""
    below = values - low.to_numpy(dtype=float)
    above = high.to_numpy(dtype=float) - values
    return np.clip(np.nan_to_num(np.vstack([below, above])), 0, None)


def _message(path: str | os.PathLike, text: str) -> None:
    """A small figure that says why there is nothing to plot (the rule's output still exists)."""
    figure, axis = plt.subplots(figsize=(5, 2))
    axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    axis.set_axis_off()
    save_figure(figure, path)


def plot_curves(
    history: pd.DataFrame,
    path: str | os.PathLike,
    noise_band: Mapping[str, float] | None = None,
    title: str | None = None,
) -> None:
    """Loss and accuracy vs epoch, train and validation; optional ± band around validation."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = history["epoch"].to_numpy()
    # Markers make a one-row history (the non-deep baseline) visible as points.
    style = {"marker": "o", "markersize": 4 if len(history) > 1 else 7}
    for axis, metric in zip(axes, ("loss", "accuracy")):
        drawn = False
        for column, label, colour in (
            (metric, "train", "C0"),
            (f"val_{metric}", "validation", "C1"),
        ):
            if column not in history or history[column].isna().all():
                continue
            values = history[column].to_numpy(dtype=float)
            axis.plot(epochs, values, color=colour, label=label, **style)
            drawn = True
            half_width = (noise_band or {}).get(column)
            if column.startswith("val_") and half_width:
                axis.fill_between(
                    epochs,
                    values - half_width,
                    values + half_width,
                    color=colour,
                    alpha=0.2,
                    label="validation noise band",
                )
        if drawn:
            axis.legend(loc="best", fontsize="small")
        else:
            axis.text(0.5, 0.5, f"no {metric} recorded", ha="center", transform=axis.transAxes)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(history) > 1:
            axis.set_xlim(epochs.min(), epochs.max())
        else:
            axis.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    if title:
        figure.suptitle(title)
    save_figure(figure, path)


def plot_batches(
    batches: pd.DataFrame | None,
    path: str | os.PathLike,
    window: int = BATCH_MEDIAN_WINDOW,
    title: str | None = None,
) -> None:
    """Per-batch training loss vs global step, epoch boundaries dotted, rolling median on top."""
    if batches is None or batches.empty:
        _message(path, "no per-batch log for this run (the non-deep baseline has no batches)")
        return
    batches = batches.sort_values(["epoch", "batch"], ignore_index=True)
    steps = batches["step"] if "step" in batches else pd.Series(np.arange(1, len(batches) + 1))
    loss = batches["loss"].astype(float)
    figure, axis = plt.subplots(figsize=(9, 4))
    axis.plot(steps, loss, color="C0", alpha=0.35, linewidth=0.8, label="batch loss")
    median = loss.rolling(window, center=True, min_periods=1).median()
    axis.plot(steps, median, color="C3", linewidth=1.6, label=f"rolling median ({window})")
    starts = steps[batches["epoch"].ne(batches["epoch"].shift())].iloc[1:]
    for number, start in enumerate(starts):
        axis.axvline(
            start, color="grey", linestyle=":", label="epoch start" if not number else None
        )
    axis.set_xlabel("training step (batch)")
    axis.set_ylabel("loss")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right", fontsize="small")
    if title:
        axis.set_title(title)
    save_figure(figure, path)


def plot_confusion(
    predictions: pd.DataFrame,
    classes: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> None:
    """Confusion matrix: counts written in the cells, colour = share of the true class's row."""
    classes = list(classes)
    position = {name: i for i, name in enumerate(classes)}
    true = predictions["true"].astype(str).map(position)
    predicted = predictions["predicted"].astype(str).map(position)
    if true.isna().any() or predicted.isna().any():
        unknown = sorted(
            set(predictions["true"].astype(str)) | set(predictions["predicted"].astype(str))
        )
        raise ValueError(f"predictions name classes {unknown} not all among {classes}")
    counts = confusion_matrix(
        true.to_numpy(dtype=int), predicted.to_numpy(dtype=int), labels=range(len(classes))
    )
    # Row-normalised colour: a small class's errors are as visible as a large one's.
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.6 * len(classes)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for row in range(len(classes)):
        for column in range(len(classes)):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axis.text(column, row, counts[row, column], ha="center", va="center", color=colour)
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    axis.set_title(f"{title + ': ' if title else ''}accuracy {accuracy:.3f} (n={counts.sum()})")
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of true class")
    save_figure(figure, path)


def plot_samples(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    per_class: int = 6,
    seed: int = 0,
    title: str | None = None,
) -> None:
    """A grid of randomly drawn images: one row per class, `per_class` columns."""
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    rng = np.random.default_rng(seed)
    figure, axes = plt.subplots(
        len(classes), per_class, figsize=(1.4 * per_class + 1, 1.4 * len(classes)), squeeze=False
    )
    for row, name in enumerate(classes):
        members = np.flatnonzero(labels == row)
        # Sorted indices: reading a memmap in file order is faster than random order.
        chosen = np.sort(rng.choice(members, min(per_class, len(members)), replace=False))
        for column, axis in enumerate(axes[row]):
            axis.set_xticks([])
            axis.set_yticks([])
            if column < len(chosen):
                image = np.asarray(images[chosen[column]])[..., 0]
                top = np.iinfo(image.dtype).max  # 255, or 65535 for bit_depth 16
                axis.imshow(image, cmap="gray", vmin=0, vmax=top)
            else:
                axis.set_axis_off()
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center")
    if title:
        figure.suptitle(title)
    save_figure(figure, path)


def plot_validation_accuracy(
    histories: Mapping[str, Sequence[pd.DataFrame]], path: str | os.PathLike
) -> None:
    """Validation accuracy per epoch for every run (the mean over its seeds, their range
    shaded); a one-epoch run (baseline) is a dashed line."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    frames = [h for group in histories.values() for h in group if len(h)]
    last_epoch = max((int(h["epoch"].max()) for h in frames), default=1)
    # The caller's run order (config order) fixes the colours, as in the comparison table.
    for number, (run, group) in enumerate(histories.items()):
        colour = f"C{number % 10}"
        if not group:
            continue
        curves = pd.concat([h.set_index("epoch")["val_accuracy"] for h in group], axis=1)
        mean = curves.mean(axis=1)
        seeds = f", {len(group)} seeds" if len(group) > 1 else ""
        if len(mean) == 1:
            value = float(mean.iloc[0])
            if not np.isnan(value):
                label = f"{run} ({value:.3f}{seeds})"
                axis.axhline(value, color=colour, linestyle="--", label=label)
            continue
        axis.plot(mean.index, mean, color=colour, marker="o", markersize=3, label=run + seeds)
        if len(group) > 1:
            low, high = curves.min(axis=1), curves.max(axis=1)
            axis.fill_between(mean.index, low, high, color=colour, alpha=0.15)
    axis.set_xlim(1, max(last_epoch, 2))
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation accuracy")
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize="small")
    save_figure(figure, path)


def plot_best_accuracy(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Per run: accuracy (precise BN, the decision measure) with its 95 % interval, the last
    epoch's with stored statistics, the best epoch's, and chance."""
    table = table.reset_index(drop=True)
    rows = np.arange(len(table))[::-1]  # first run at the top
    figure, axis = plt.subplots(figsize=(8, 1.5 + 0.5 * len(table)))
    accuracy = table["accuracy"].to_numpy(dtype=float)
    errors = _interval_errors(accuracy, table["ci_low"], table["ci_high"])
    axis.errorbar(
        accuracy,
        rows,
        xerr=errors,
        fmt="o",
        color="C0",
        capsize=4,
        label="accuracy (precise BN), 95 % interval",
    )
    axis.scatter(
        table["final_val_accuracy"], rows, marker="x", color="C2", label="last epoch (stored BN)"
    )
    axis.scatter(
        table["best_val_accuracy"],
        rows,
        marker="D",
        facecolors="none",
        edgecolors="C1",
        label="best epoch (optimistic)",
    )
    chance = table["chance"].dropna()
    if len(chance):
        axis.axvline(chance.max(), color="grey", linestyle="--", label="chance (1/classes)")
    majority = table.get("majority_rate", pd.Series(dtype=float)).dropna()
    if len(majority) and len(chance) and majority.max() > chance.max():
        axis.axvline(majority.max(), color="grey", linestyle=":", label="majority class")
    axis.set_yticks(rows, table["run"])
    axis.set_xlim(0, 1.02)
    axis.set_xlabel("validation accuracy")
    axis.grid(axis="x", alpha=0.3)
    axis.legend(loc="lower right", fontsize="small")
    save_figure(figure, path)


def plot_learning_curve(points: pd.DataFrame, path: str | os.PathLike) -> None:
    """Accuracy (95 % interval) vs number of training images, one line per model."""
    if points.empty:
        _message(path, "no data-size sweep: every model was trained on one training-set size")
        return
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for number, (model, group) in enumerate(points.groupby("model", sort=True)):
        group = group.sort_values("train_images")
        accuracy = group["accuracy"].to_numpy(dtype=float)
        errors = _interval_errors(accuracy, group["ci_low"], group["ci_high"])
        axis.errorbar(
            group["train_images"].to_numpy(dtype=float),
            accuracy,
            yerr=errors,
            marker="o",
            capsize=3,
            color=f"C{number % 10}",
            label=model,
        )
    if "chance" in points and points["chance"].notna().any():
        axis.axhline(points["chance"].max(), color="grey", linestyle="--", label="chance")
    axis.set_xscale("log")
    # Tick the sizes actually trained on, written out, instead of powers of ten.
    sizes = sorted(points["train_images"].dropna().astype(int).unique())
    axis.set_xticks(sizes, [f"{size:,}" for size in sizes])
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("training images")
    axis.set_ylabel("final validation accuracy")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower right", fontsize="small")
    save_figure(figure, path)
