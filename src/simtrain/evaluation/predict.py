"""Predictions for a folder of unlabelled images: file, predicted class, probabilities."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.common.files import write_tsv
from simtrain.data.images import Conversion
from simtrain.data.ingest import ingest_unlabelled_set
from simtrain.evaluation.run_model import BATCH_SIZE, RunModel

log = logging.getLogger(__name__)


def predictions_of(
    model: RunModel, images: np.ndarray, files: pd.DataFrame, *, batch_size: int = BATCH_SIZE
) -> pd.DataFrame:
    """file, predicted, p_<class> per class, in the order of `files`."""
    probabilities = model.probabilities(images, batch_size=batch_size)
    names = np.asarray(model.classes)
    table = pd.DataFrame(
        {"file": files["file"].to_numpy(), "predicted": names[probabilities.argmax(axis=1)]}
    )
    for i, name in enumerate(model.classes):
        table[f"p_{name}"] = probabilities[:, i]
    return table


def predict_set(
    model: RunModel,
    set_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    batch_size: int = BATCH_SIZE,
) -> pd.DataFrame:
    """Predictions for a folder ingested by `ingest_unlabelled_set`, written to `output`."""
    set_dir = Path(set_dir)
    images = np.load(set_dir / "images.npy", mmap_mode="r")
    files = pd.read_csv(set_dir / "files.tsv", sep="\t", dtype=str, keep_default_na=False)
    table = predictions_of(model, images, files, batch_size=batch_size)
    write_tsv(output, table)
    counts = table["predicted"].value_counts().to_dict()
    log.info("%d images predicted by %s: %s", len(table), model.run_dir, counts)
    return table


def predict_folder(
    model: RunModel,
    folder: str | os.PathLike,
    output: str | os.PathLike,
    conversion: Conversion,
    *,
    batch_size: int = BATCH_SIZE,
    threads: int = 1,
) -> pd.DataFrame:
    """Ingest `folder` (converted like the run's training images) into a temporary memory-mapped
    array, then write its predictions to `output`."""
    with tempfile.TemporaryDirectory(prefix="simtrain-predict-") as scratch:
        ingest_unlabelled_set(
            folder, conversion=conversion, out_dir=scratch, key=str(folder), threads=threads
        )
        return predict_set(model, scratch, output, batch_size=batch_size)
