"""The non-deep baseline: hand-crafted image features + logistic regression.

Answers "does a deep network help at all?": a deep run that cannot beat this on the same
validation images has not learned anything a few textbook features do not capture.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from skimage.feature import hog
from skimage.transform import downscale_local_mean
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from simtrain.common.failpoints import failpoint
from simtrain.common.files import atomic_path
from simtrain.data.arrays import PackedSplit, stratified_subset
from simtrain.training.tables import (
    BASELINE_MODEL_FILE,
    HISTORY_COLUMNS,
    TIMING_COLUMNS,
    predictions_table,
    table,
    write_run_tables,
)

log = logging.getLogger(__name__)

# Features are computed on images shrunk to this side: HOG cost stays flat in image size.
FEATURE_SIDE = 64
SPECTRUM_BINS = 16


def image_features(image: np.ndarray) -> np.ndarray:
    """Intensity statistics, a radial power spectrum and HOG orientation histograms."""
    pixels = image[..., 0].astype(np.float32) / np.iinfo(image.dtype).max  # uint8 or uint16
    factor = max(pixels.shape[0] // FEATURE_SIDE, 1)
    small = downscale_local_mean(pixels, (factor, factor)) if factor > 1 else pixels
    centred = pixels - pixels.mean()
    stats = [
        pixels.mean(),
        pixels.std(),
        *np.percentile(pixels, [1, 5, 25, 50, 75, 95, 99]),
        ((centred / (pixels.std() + 1e-6)) ** 4).mean(),
    ]
    power = np.abs(np.fft.fftshift(np.fft.fft2(centred))) ** 2
    y, x = np.indices(power.shape)
    radius = np.hypot(y - power.shape[0] / 2, x - power.shape[1] / 2)
    bins = np.minimum((radius / radius.max() * SPECTRUM_BINS).astype(int), SPECTRUM_BINS - 1)
    spectrum = np.log1p(
        np.bincount(bins.ravel(), power.ravel(), SPECTRUM_BINS)
        / np.bincount(bins.ravel(), minlength=SPECTRUM_BINS)
    )
    orientations = hog(small, orientations=9, pixels_per_cell=(16, 16), cells_per_block=(2, 2))
    return np.concatenate([stats, spectrum, orientations]).astype(np.float64)


def save_baseline(classifier: Pipeline, path: str | os.PathLike) -> None:
    """The fitted pipeline, so evaluation and prediction score new images without refitting."""
    with atomic_path(path) as tmp:
        joblib.dump(classifier, tmp)


def load_baseline(path: str | os.PathLike) -> Pipeline:
    """A pipeline written by `save_baseline` (a pickle: load only files this workflow wrote)."""
    return joblib.load(path)


def baseline_probabilities(classifier: Pipeline, images: np.ndarray) -> np.ndarray:
    """Class probabilities of packed images (N x H x W x 1, uint8 or uint16)."""
    return classifier.predict_proba(features(images, np.arange(len(images))))


def features(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
    progress = tqdm(indices, desc="HOG features", unit="image", mininterval=5)
    return np.stack([image_features(np.asarray(images[i])) for i in progress])


def train_baseline(
    *,
    run: str,
    settings: Mapping[str, Any],
    train_dir: str | os.PathLike,
    validation_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    resolved_config: Mapping[str, Any],
    replicate: int = 0,
) -> dict[str, Any]:
    """Fit on the (optionally subset) training set; score on the full validation set."""
    started = time.perf_counter()
    train, validation = PackedSplit.load(train_dir), PackedSplit.load(validation_dir)
    subset = stratified_subset(train.labels, settings["train_images"], settings["seed"])
    train_x = features(train.images, subset)
    validation_x = features(validation.images, np.arange(len(validation)))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    fit_start = time.perf_counter()
    classifier.fit(train_x, train.labels[subset])
    fit_seconds = time.perf_counter() - fit_start
    labels = np.arange(len(train.classes))
    train_p = classifier.predict_proba(train_x)
    validation_p = classifier.predict_proba(validation_x)
    predictions = predictions_table(validation_p, validation.labels, train.classes)
    val_accuracy = float((predictions["true"] == predictions["predicted"]).mean())
    history = table(
        [
            {
                "epoch": 1,
                "loss": log_loss(train.labels[subset], train_p, labels=labels),
                "accuracy": float((train_p.argmax(1) == train.labels[subset]).mean()),
                "val_loss": log_loss(validation.labels, validation_p, labels=labels),
                "val_accuracy": val_accuracy,
                "learning_rate": float("nan"),
                "train_images_seen": len(subset),
                "train_coverage": 1.0,
                "validation_images_seen": len(validation),
            }
        ],
        HISTORY_COLUMNS,
    )
    seconds = time.perf_counter() - started
    timing = table(
        [
            {
                "epoch": 1,
                "seconds": round(seconds, 3),
                "images_per_second": round(len(subset) / seconds, 2),
            }
        ],
        TIMING_COLUMNS,
    )
    metrics = {
        "run": run,
        "replicate": replicate,
        "seed": settings["seed"],
        "model": "baseline",
        "train_images": len(subset),
        "validation_images": len(validation),
        "classes": train.classes,
        "epochs": 1,
        "train_coverage_per_epoch": 1.0,
        "final_val_accuracy": val_accuracy,
        "best_val_accuracy": val_accuracy,
        "best_epoch": 1,
        "seconds": round(seconds, 2),
        "fit_seconds": round(fit_seconds, 2),
        "images_per_second": round(len(subset) / seconds, 2),
        "features": int(train_x.shape[1]),
        # lbfgs on fixed features: the seed changes only which subset trains (train_images),
        # so on all training images every seed gives this same model.
        "seed_independent": settings["train_images"] is None,
    }
    failpoint("baseline.before_write")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    save_baseline(classifier, Path(out_dir) / BASELINE_MODEL_FILE)
    write_run_tables(
        out_dir,
        history=history,
        timing=timing,
        predictions=predictions,
        metrics=metrics,
        resolved_config=resolved_config,
    )
    log.info("baseline: validation accuracy %.3f on %d images", val_accuracy, len(validation))
    return metrics
