"""Score one trained replicate on labelled evaluation sets: per-image predictions and a
confusion matrix per set, in the layout of the run's own validation predictions."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.common.files import write_tsv
from simtrain.evaluation.run_model import BATCH_SIZE, RunModel
from simtrain.training.tables import predictions_table, read_predictions

log = logging.getLogger(__name__)


def load_set(set_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str], pd.DataFrame]:
    """(images memmap, labels, classes, files table) of an ingested labelled set."""
    set_dir = Path(set_dir)
    images = np.load(set_dir / "images.npy", mmap_mode="r")
    labels = np.load(set_dir / "labels.npy")
    classes = json.loads((set_dir / "classes.json").read_text())
    files = pd.read_csv(set_dir / "files.tsv", sep="\t", dtype=str, keep_default_na=False)
    if not len(images) == len(labels) == len(files):
        raise ValueError(f"{set_dir}: images, labels and files.tsv differ in length")
    return images, labels, classes, files


def confusion_table(predictions: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Counts of true class (rows, every configured class) x predicted class (columns)."""
    matrix = pd.crosstab(
        pd.Categorical(predictions["true"], categories=list(classes)),
        pd.Categorical(predictions["predicted"], categories=list(classes)),
        dropna=False,
    )
    matrix.index.name, matrix.columns.name = "true", None
    return matrix.reset_index()


def score_set(model: RunModel, set_dir: str | os.PathLike, *, batch_size: int = BATCH_SIZE):
    """The predictions table (file, index, true, predicted, loss, p_<class>) of one set."""
    images, labels, classes, files = load_set(set_dir)
    if list(classes) != list(model.classes):
        raise ValueError(
            f"{set_dir}: classes {classes} differ from the run's {model.classes} "
            f"({model.run_dir}); ingest the set again with the run's classes"
        )
    probabilities = model.probabilities(images, batch_size=batch_size, description=str(set_dir))
    table = predictions_table(probabilities, labels, classes)
    table.insert(0, "file", files["file"].to_numpy())
    return table


def score_replicate(
    model: RunModel,
    sets: Mapping[str, str | os.PathLike],
    out_dirs: Mapping[str, str | os.PathLike],
    *,
    batch_size: int = BATCH_SIZE,
) -> dict[str, float]:
    """Write out_dirs[set]/predictions.tsv and confusion.tsv for each set; return accuracies."""
    accuracies = {}
    for name, set_dir in sets.items():
        table = score_set(model, set_dir, batch_size=batch_size)
        out_dir = Path(out_dirs[name])
        write_tsv(out_dir / "predictions.tsv", table)
        write_tsv(out_dir / "confusion.tsv", confusion_table(table, model.classes))
        accuracies[name] = float((table["true"] == table["predicted"]).mean())
        log.info(
            "%s on %s: accuracy %.3f on %d images",
            model.run_dir,
            name,
            accuracies[name],
            len(table),
        )
    return accuracies


def read_set_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """A set's predictions.tsv, class names kept as written."""
    return read_predictions(path).astype({"file": str})
