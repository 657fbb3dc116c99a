"""The per-epoch validation record: which validation images each epoch got right, and their loss.

Training saves `results/runs/{run}/validation_record.npz` with two arrays over (epochs, N
validation images): `correct` (int8: 1 right, 0 wrong, -1 not scored that epoch, because
shuffled partial validation scores a different subset each epoch) and `loss` (float32 per-image
cross-entropy, NaN where not scored). With it the diagnostics can tell a model that changed from
a sample that changed: on the same images, a change of the curve is a change of the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RECORD_ARRAYS = ("correct", "loss")


@dataclass(frozen=True)
class ValidationRecord:
    """Per epoch (rows) and validation image (columns): correct (1/0/-1), loss (NaN: unscored)."""

    correct: np.ndarray
    loss: np.ndarray

    def __post_init__(self) -> None:
        correct, loss = np.asarray(self.correct), np.asarray(self.loss)
        if correct.ndim != 2 or loss.ndim != 2:
            raise ValueError(
                f"validation record: correct and loss must be 2-D (epochs, images), got shapes "
                f"{correct.shape} and {loss.shape}"
            )
        if correct.shape != loss.shape:
            raise ValueError(
                f"validation record: correct {correct.shape} and loss {loss.shape} differ in shape"
            )
        if not (np.issubdtype(correct.dtype, np.integer) or correct.dtype == np.bool_):
            raise ValueError(
                f"validation record: correct must be int8 (1/0/-1), got {correct.dtype}"
            )
        if not np.issubdtype(loss.dtype, np.floating):
            raise ValueError(f"validation record: loss must be float32, got {loss.dtype}")
        correct = correct.astype(np.int8)
        if not np.isin(correct, (-1, 0, 1)).all():
            raise ValueError("validation record: correct holds values other than 1, 0 and -1")
        scored = correct >= 0
        if not np.isfinite(loss[scored]).all():
            raise ValueError(
                "validation record: a scored image (correct 0 or 1) has no finite loss"
            )
        if not np.isnan(loss[~scored]).all():
            raise ValueError("validation record: an unscored image (correct -1) has a loss")
        loss = loss.astype(np.float32)
        for array in (correct, loss):
            array.setflags(write=False)
        object.__setattr__(self, "correct", correct)
        object.__setattr__(self, "loss", loss)

    @property
    def epochs(self) -> int:
        return int(self.correct.shape[0])

    @property
    def images(self) -> int:
        return int(self.correct.shape[1])

    @property
    def scored(self) -> np.ndarray:
        """Boolean (epochs, images): which images each epoch scored."""
        return self.correct >= 0

    @property
    def images_scored(self) -> np.ndarray:
        return self.scored.sum(axis=1)

    @property
    def same_images_every_epoch(self) -> bool:
        """True when every epoch scored the same images (a fixed validation set)."""
        return bool((self.scored == self.scored[0]).all())

    def accuracy(self) -> np.ndarray:
        """Per-epoch accuracy over the images scored (NaN for an epoch that scored none)."""
        right = np.where(self.scored, self.correct, 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return right / self.images_scored

    def mean_loss(self) -> np.ndarray:
        """Per-epoch mean loss over the images scored (NaN for an epoch that scored none)."""
        with np.errstate(invalid="ignore"):
            totals = np.nansum(self.loss, axis=1, dtype=np.float64)
            return np.where(
                self.images_scored > 0, totals / np.maximum(self.images_scored, 1), np.nan
            )

    def loss_sd(self) -> np.ndarray:
        """Per-epoch standard deviation of the per-image losses scored (NaN below 2 images)."""
        sd = np.full(self.epochs, np.nan)
        for epoch in range(self.epochs):
            values = self.loss[epoch][self.scored[epoch]].astype(np.float64)
            if values.size >= 2:
                sd[epoch] = values.std(ddof=1)
        return sd


def load_validation_record(path: str | os.PathLike) -> ValidationRecord:
    """Read validation_record.npz; a ValueError names the file and what is wrong with it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as saved:
            names = list(saved.files)
            arrays = {name: saved[name] for name in RECORD_ARRAYS if name in names}
    except (OSError, EOFError, ValueError) as error:  # missing, truncated or not an .npz
        raise ValueError(f"{path}: cannot read the validation record ({error})") from error
    missing = [name for name in RECORD_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"{path}: validation record lacks {missing}; has {names}")
    correct, loss = arrays["correct"], arrays["loss"]
    try:
        return ValidationRecord(correct=correct, loss=loss)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
