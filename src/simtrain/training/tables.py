"""The per-run tables every model writes, in one place so their columns never drift."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import yaml

from simtrain.common.files import write_json, write_text, write_tsv

HISTORY_COLUMNS = [
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "train_images_seen",
    "train_coverage",
    "validation_images_seen",
]
TIMING_COLUMNS = ["epoch", "seconds", "images_per_second"]
# The baseline's fitted pipeline (features scaler + logistic regression), beside its tables.
BASELINE_MODEL_FILE = "model.joblib"
BATCH_COLUMNS = ["epoch", "batch", "step", "batch_size", "loss", "accuracy"]

# Probabilities are clipped before the log so one confident mistake is finite.
_EPSILON = 1e-7


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(columns))


def per_image_scores(
    probabilities: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(cross-entropy loss, right or wrong) of each image, from the model's probabilities.

    A diverged model's NaN probabilities score as wrong at the clipped loss -log(1e-7), so
    the run stays diagnosable (its training loss says it diverged)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    valid = np.isfinite(probabilities).all(axis=1)
    true_p = np.where(valid, probabilities[np.arange(len(labels)), labels], 0.0)
    loss = -np.log(np.clip(true_p, _EPSILON, 1.0))
    return loss, valid & (probabilities.argmax(axis=1) == labels)


def predictions_table(
    probabilities: np.ndarray, labels: np.ndarray, classes: Sequence[str]
) -> pd.DataFrame:
    """index, true, predicted, per-image cross-entropy loss, then p_<class> per class."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(labels), len(classes)):
        raise ValueError(
            f"expected probabilities of shape {(len(labels), len(classes))}, "
            f"got {probabilities.shape}"
        )
    names = np.asarray(classes, dtype=object)
    # A diverged model's NaN probabilities predict nothing (an empty class name).
    valid = np.isfinite(probabilities).all(axis=1)
    frame = pd.DataFrame(
        {
            "index": np.arange(len(labels)),
            "true": names[labels],
            "predicted": np.where(valid, names[probabilities.argmax(axis=1)], ""),
            "loss": per_image_scores(probabilities, labels)[0],
        }
    )
    for i, name in enumerate(classes):
        frame[f"p_{name}"] = probabilities[:, i]
    return frame


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """predictions.tsv with class names kept as written: pandas would read a class named NA,
    null, None or nan as missing, and 007 as the number 7."""
    return pd.read_csv(path, sep="\t", dtype={"true": str, "predicted": str}, keep_default_na=False)


def write_run_tables(
    out_dir: str | os.PathLike,
    *,
    history: pd.DataFrame,
    timing: pd.DataFrame,
    predictions: pd.DataFrame,
    metrics: Mapping[str, Any],
    resolved_config: Mapping[str, Any],
) -> None:
    write_tsv(os.path.join(out_dir, "history.tsv"), history[HISTORY_COLUMNS])
    write_tsv(os.path.join(out_dir, "timing.tsv"), timing[TIMING_COLUMNS])
    write_tsv(os.path.join(out_dir, "predictions.tsv"), predictions)
    write_json(os.path.join(out_dir, "metrics.json"), dict(metrics))
    write_text(
        os.path.join(out_dir, "config.resolved.yaml"),
        "# Everything needed to reproduce this run: the data config and the run's settings.\n"
        + yaml.safe_dump(dict(resolved_config), sort_keys=False),
    )
