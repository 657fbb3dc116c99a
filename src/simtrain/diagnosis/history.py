"""Reading a learning-curve table: simtrain's history.tsv or any Keras CSVLogger file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Keras 2 CSVLogger names -> Keras 3 / our names.
KERAS_2_COLUMNS = {"acc": "accuracy", "val_acc": "val_accuracy", "lr": "learning_rate"}


def normalise_history(history: pd.DataFrame) -> pd.DataFrame:
    frame = history.rename(columns=lambda name: KERAS_2_COLUMNS.get(str(name).strip(), name))
    if "loss" not in frame.columns:
        raise ValueError(f"history has no 'loss' column; got {list(frame.columns)}")
    if frame.empty:
        raise ValueError("history has no rows (no epoch was trained)")
    if "epoch" not in frame.columns:
        frame = frame.assign(epoch=np.arange(1, len(frame) + 1))
    return frame.sort_values("epoch", kind="stable").reset_index(drop=True)


def read_history(path: str | Path) -> pd.DataFrame:
    """Read our history.tsv or a Keras CSVLogger file (Keras 2 or 3 names; separator detected).

    CSVLogger counts epochs from 0, our training stage from 1: a history whose first epoch is 0
    is shifted to start at 1.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        header = handle.readline()
    separator = "\t" if "\t" in header else ";" if ";" in header and "," not in header else ","
    frame = normalise_history(pd.read_csv(path, sep=separator))
    if frame["epoch"].min() == 0:
        frame["epoch"] = frame["epoch"] + 1
    return frame
