"""A trained run's model, whichever kind (Keras or the baseline), as class probabilities of
packed images, computed batch by batch from a memory-mapped array with progress."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from simtrain.training.tables import BASELINE_MODEL_FILE

log = logging.getLogger(__name__)

# Which saved model of a deep run: the final weights, the lowest-val_loss epoch's, or the final
# weights with BatchNorm statistics recomputed over un-augmented training data.
MODEL_FILES = {"final": "model.keras", "best": "best.keras", "precise_bn": "precise_bn.keras"}
BASELINE_MODEL = "baseline"
BATCH_SIZE = 64


def model_file(run_dir: str | os.PathLike, choice: str, model: str) -> Path:
    """The file holding `choice` of a run whose metrics.json names `model`."""
    if choice not in MODEL_FILES:
        raise ValueError(f"model choice {choice!r}: expected one of {', '.join(MODEL_FILES)}")
    if model == BASELINE_MODEL:
        if choice != "final":
            raise ValueError(f"the baseline has one fitted model; choose final, not {choice!r}")
        return Path(run_dir) / BASELINE_MODEL_FILE
    return Path(run_dir) / MODEL_FILES[choice]


@dataclass
class RunModel:
    """A loaded model and the classes its outputs stand for."""

    run_dir: Path
    name: str  # the run's `model` setting
    classes: list[str]
    model: Any  # keras.Model or the baseline's sklearn Pipeline

    @property
    def is_baseline(self) -> bool:
        return self.name == BASELINE_MODEL

    @property
    def input_dtype(self) -> str | None:
        """The pixel dtype a Keras model takes (uint8 or uint16); None for the baseline."""
        return None if self.is_baseline else str(self.model.inputs[0].dtype)

    @property
    def image_size(self) -> int | None:
        return None if self.is_baseline else int(self.model.inputs[0].shape[1])

    def check_images(self, images: np.ndarray, where: str) -> None:
        """The images are what the model takes (size and pixel type)."""
        if images.ndim != 4 or images.shape[-1] != 1:
            raise ValueError(f"{where}: expected N x H x W x 1 images, got {images.shape}")
        if self.image_size is not None and images.shape[1:3] != (self.image_size,) * 2:
            raise ValueError(
                f"{where}: {images.shape[1]}x{images.shape[2]} images, but the model of "
                f"{self.run_dir} takes {self.image_size}x{self.image_size}"
            )
        if self.input_dtype is not None and images.dtype.name != self.input_dtype:
            raise ValueError(
                f"{where}: {images.dtype} images, but the model of {self.run_dir} takes "
                f"{self.input_dtype} (bit_depth {8 if self.input_dtype == 'uint8' else 16})"
            )

    def probabilities(
        self, images: np.ndarray, *, batch_size: int = BATCH_SIZE, description: str = "predict"
    ) -> np.ndarray:
        """(N, classes) probabilities, `batch_size` images at a time read from `images`."""
        self.check_images(images, description)
        if self.is_baseline:
            from simtrain.training.baseline import baseline_probabilities

            return np.asarray(baseline_probabilities(self.model, images), dtype=np.float64)
        batches = []
        starts = range(0, len(images), batch_size)
        for start in tqdm(starts, desc=description, unit="batch", mininterval=5):
            batch = np.asarray(images[start : start + batch_size])
            batches.append(np.asarray(self.model.predict_on_batch(batch), dtype=np.float64))
        if not batches:
            return np.zeros((0, len(self.classes)))
        return np.concatenate(batches)


def load_run_model(
    run_dir: str | os.PathLike, choice: str = "final", search_path: str | os.PathLike | None = None
) -> RunModel:
    """The run's `choice` model (final, best or precise_bn; the baseline's only one)."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise ValueError(f"{run_dir}: not a trained run's folder (no metrics.json)")
    metrics = json.loads(metrics_path.read_text())
    name, classes = str(metrics["model"]), list(metrics["classes"])
    path = model_file(run_dir, choice, name)
    if not path.is_file():
        raise ValueError(f"{path}: missing; the run has no {choice!r} model")
    if name == BASELINE_MODEL:
        from simtrain.training.baseline import load_baseline

        model = load_baseline(path)
    else:
        import keras

        from simtrain.training.models import custom_objects

        model = keras.models.load_model(path, custom_objects=custom_objects(name, search_path))
    log.info("loaded %s (%s, classes %s)", path, name, classes)
    return RunModel(run_dir, name, classes, model)
