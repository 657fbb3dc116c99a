"""Train one deep run: full-coverage epochs by default, resumable, deterministic on CPU."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from simtrain.common.failpoints import failpoint
from simtrain.common.files import atomic_path, recover_directory, write_tsv
from simtrain.data.arrays import PackedSplit, stratified_subset
from simtrain.training import backend
from simtrain.training.batches import EpochSync, PackedBatches
from simtrain.training.models import build_model, custom_objects, make_optimizer
from simtrain.training.tables import (
    BATCH_COLUMNS,
    HISTORY_COLUMNS,
    TIMING_COLUMNS,
    predictions_table,
    table,
    write_run_tables,
)

log = logging.getLogger(__name__)

BACKUP_DIR = ".backup"
VALIDATION_RECORD = "validation_record.npz"


@dataclass(frozen=True)
class RunSettings:
    model: str
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    steps_per_epoch: int | None
    validation_steps: int | None
    validation_shuffle: bool
    augmentation: dict
    standardize: bool
    train_images: int | None
    seed: int

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> RunSettings:
        return cls(**{key: settings[key] for key in cls.__dataclass_fields__})


def fingerprint(settings: RunSettings, data_dirs: list[Path]) -> str:
    """Identifies what a backup was trained on; a mismatch means start afresh."""
    files = sorted(p for d in data_dirs for p in d.iterdir() if p.is_file())
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    text = json.dumps([asdict(settings), [str(d) for d in data_dirs], stats], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seed_states(model: keras.Model) -> list[keras.Variable]:
    # Augmentation RNG states are not part of a saved .keras model, yet resuming must
    # continue their streams exactly.
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class Recorder(keras.callbacks.Callback):
    """Per-batch and per-epoch tables plus a resumable backup after every epoch.

    The backup (model with optimizer state, augmentation RNG states, best model and the
    tables so far) replaces the previous one atomically, so a kill at any moment leaves
    the last completed epoch to resume from. Keras' BackupAndRestore does not keep the
    RNG states, and ModelCheckpoint writes in place.
    """

    def __init__(
        self,
        backup: Path,
        key: str,
        train: PackedBatches,
        validation: PackedBatches,
        state: dict,
        record: dict[str, list[np.ndarray]],
    ):
        super().__init__()
        self.backup, self.key = backup, key
        self.train, self.validation = train, validation
        self.state = state
        self.record = record

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.seen, self.previous = 0, (0.0, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports running means over the epoch; undo them to get this batch's values.
        size = len(self.train.batch_indices(self.train.epoch, batch))
        seen = self.seen + size
        loss, accuracy = float(logs["loss"]), float(logs["accuracy"])
        sums = (loss * seen, accuracy * seen)
        self.state["batches"].append(
            {
                "epoch": self.train.epoch + 1,
                "batch": batch,
                "step": self.train.epoch * len(self.train) + batch,
                "batch_size": size,
                # Rounded: differencing float32 means leaves noise in the last digits.
                "loss": round((sums[0] - self.previous[0]) / size, 5),
                "accuracy": round((sums[1] - self.previous[1]) / size, 5),
            }
        )
        self.seen, self.previous = seen, sums
        if (self.train.epoch, batch) == (1, 1):
            failpoint("train.mid_epoch")

    def validate(self, epoch: int, logs: dict) -> None:
        """Score this epoch's validation batches image by image, and log their means.

        Keras' own validation only reports means; the per-image outcomes let the diagnostics
        tell a model that changed from a sample that changed (validation_record.npz).
        """
        probabilities = np.asarray(self.model.predict(self.validation, verbose=0), np.float64)
        # The order predict() returns: each batch's indices, sorted as __getitem__ reads them.
        scored = np.concatenate(
            [np.sort(self.validation.batch_indices(epoch, s)) for s in range(len(self.validation))]
        )
        labels = self.validation.split.labels[scored]
        true_p = np.clip(probabilities[np.arange(len(scored)), labels], 1e-7, 1.0)
        losses = -np.log(true_p)
        correct = probabilities.argmax(axis=1) == labels
        logs["val_loss"], logs["val_accuracy"] = float(losses.mean()), float(correct.mean())
        # An image scored twice in one epoch (a stream crossing a pass) keeps its last result.
        outcome = np.full(len(self.validation.split), -1, dtype=np.int8)
        per_image_loss = np.full(len(self.validation.split), np.nan, dtype=np.float32)
        outcome[scored], per_image_loss[scored] = correct, losses
        self.record["correct"].append(outcome)
        self.record["loss"].append(per_image_loss)

    def on_epoch_end(self, epoch, logs=None):
        train_seconds = time.perf_counter() - self.epoch_start
        self.validate(epoch, logs)
        seconds = time.perf_counter() - self.epoch_start
        seen = self.train.epoch_indices(epoch)
        row = {
            "epoch": epoch + 1,
            "loss": float(logs["loss"]),
            "accuracy": float(logs["accuracy"]),
            "val_loss": round(logs["val_loss"], 7),
            "val_accuracy": round(logs["val_accuracy"], 7),
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "train_images_seen": len(seen),
            "train_coverage": len(np.unique(seen)) / len(self.train.indices),
            "validation_images_seen": len(self.validation.epoch_indices(epoch)),
        }
        self.state["history"].append(row)
        self.state["timing"].append(
            {
                "epoch": epoch + 1,
                "seconds": round(seconds, 3),
                "images_per_second": round(len(seen) / train_seconds, 2),
            }
        )
        improved = row["val_loss"] < self.state.get("best_val_loss", float("inf"))
        if improved:
            self.state["best_val_loss"], self.state["best_epoch"] = row["val_loss"], epoch + 1
        self.save_backup(improved)
        failpoint("train.after_backup")

    def save_backup(self, improved: bool) -> None:
        with atomic_path(self.backup) as tmp:
            tmp.mkdir()
            self.model.save(tmp / "model.keras")
            if improved:
                self.model.save(tmp / "best.keras")
            else:
                os.link(self.backup / "best.keras", tmp / "best.keras")
            np.savez(tmp / "seeds.npz", *[np.asarray(v.numpy()) for v in seed_states(self.model)])
            save_validation_record(tmp / VALIDATION_RECORD, self.record)
            (tmp / "state.json").write_text(json.dumps({**self.state, "key": self.key}))


def save_validation_record(path: Path, record: dict[str, list[np.ndarray]]) -> None:
    """Per epoch and validation image: correct (1/0, -1 not scored) and loss (NaN not scored)."""
    n = len(record["correct"])
    with open(path, "wb") as handle:
        np.savez(
            handle,
            correct=np.array(record["correct"], dtype=np.int8).reshape(n, -1),
            loss=np.array(record["loss"], dtype=np.float32).reshape(n, -1),
        )


def restore(
    backup: Path, key: str, custom_objects=None
) -> tuple[keras.Model | None, dict, dict[str, list[np.ndarray]]]:
    """The model, tables and validation record of the last completed epoch, if a matching
    backup exists."""
    empty = {"history": [], "timing": [], "batches": []}
    recover_directory(backup)  # a kill mid-swap leaves the last backup under its aside name
    state_file = backup / "state.json"
    if not state_file.exists():
        return None, empty, {"correct": [], "loss": []}
    state = json.loads(state_file.read_text())
    if state.pop("key") != key:
        log.info("ignoring a backup made for other settings or data: %s", backup)
        shutil.rmtree(backup)
        return None, empty, {"correct": [], "loss": []}
    with np.load(backup / VALIDATION_RECORD) as saved:
        record = {name: list(saved[name]) for name in ("correct", "loss")}
    model = keras.models.load_model(backup / "model.keras", custom_objects=custom_objects)
    with np.load(backup / "seeds.npz") as seeds:
        for variable, i in zip(seed_states(model), range(len(seeds.files))):
            variable.assign(seeds[f"arr_{i}"])
    log.info("resuming after epoch %d from %s", len(state["history"]), backup)
    return model, state, record


def train_run(
    *,
    run: str,
    settings: Mapping[str, Any],
    train_dir: str | os.PathLike,
    validation_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    resolved_config: Mapping[str, Any],
    threads: int = 1,
    workers: int = 2,
    mixed_precision: str | bool = "auto",
    data_parallel: str | bool = "auto",
    search_path: str | os.PathLike | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, Any]:
    """Train, evaluate on the full validation set and write the run's artifacts to out_dir."""
    started = time.perf_counter()
    settings = RunSettings.from_mapping(settings)
    out_dir = Path(out_dir)
    runtime = backend.configure(
        settings.seed, threads=threads, mixed_precision=mixed_precision, data_parallel=data_parallel
    )
    train_split, validation_split = PackedSplit.load(train_dir), PackedSplit.load(validation_dir)
    if train_split.classes != validation_split.classes:
        raise ValueError(f"{train_dir} and {validation_dir} have different classes")
    subset = stratified_subset(train_split.labels, settings.train_images, settings.seed)
    train = PackedBatches(
        train_split,
        settings.batch_size,
        indices=subset,
        steps=settings.steps_per_epoch,
        shuffle=True,
        seed=settings.seed,
        workers=workers,
    )
    validation = PackedBatches(
        validation_split,
        settings.batch_size,
        steps=settings.validation_steps,
        shuffle=settings.validation_shuffle,
        continue_stream=settings.validation_shuffle,
        seed=settings.seed + 1,
        workers=workers,
    )
    coverage = min(len(train) * settings.batch_size, len(subset)) / len(subset)
    if coverage < 1:
        log.warning(
            "steps_per_epoch=%d x batch_size=%d covers only %.1f%% of the %d training images "
            "per epoch; each 'epoch' is a partial pass (the diagnostics will flag it)",
            len(train),
            settings.batch_size,
            100 * coverage,
            len(subset),
        )

    backup = out_dir / BACKUP_DIR
    key = fingerprint(settings, [Path(train_dir), Path(validation_dir)])
    with backend.distribution_scope(runtime):
        # A plug-in model's own classes, so its backup loads (built-ins need none).
        objects = custom_objects(settings.model, search_path)
        model, state, record = restore(backup, key, custom_objects=objects)
        if model is None:
            model = build_model(
                settings.model,
                image_size=train_split.images.shape[1],
                num_classes=len(train_split.classes),
                augmentation=settings.augmentation,
                standardize=settings.standardize,
                seed=settings.seed,
                search_path=search_path,
            )
            model.compile(
                optimizer=make_optimizer(settings.optimizer, settings.learning_rate),
                loss="categorical_crossentropy",
                metrics=["accuracy"],
            )
        log.info("model %s: %d parameters", model.name, model.count_params())
        recorder = Recorder(backup, key, train, validation, state, record)
        # No validation_data: the recorder scores validation image by image and logs val_*.
        model.fit(
            train,
            epochs=settings.epochs,
            initial_epoch=len(state["history"]),
            shuffle=False,  # PackedBatches shuffles, reproducibly; Keras would reorder batches
            callbacks=[EpochSync(train, validation), recorder, *callbacks],
            verbose=2,
        )
        full_validation = PackedBatches(
            validation_split, settings.batch_size, shuffle=False, workers=workers
        )
        probabilities = model.predict(full_validation, verbose=0)

    history = table(state["history"], HISTORY_COLUMNS)
    predictions = predictions_table(probabilities, validation_split.labels, train_split.classes)
    metrics = {
        "run": run,
        "model": settings.model,
        "backend": runtime.backend,
        # How it ran (not rerun triggers, so recorded here): config `execution` and threads.
        "execution": {
            "loader_workers": workers,
            "mixed_precision": mixed_precision,
            "data_parallel": data_parallel,
            "threads": threads,
        },
        "devices": runtime.devices,
        "dtype_policy": runtime.dtype_policy,
        "train_images": len(subset),
        "validation_images": len(validation_split),
        "classes": train_split.classes,
        "epochs": settings.epochs,
        "train_coverage_per_epoch": round(coverage, 6),
        "final_val_accuracy": float((predictions["true"] == predictions["predicted"]).mean()),
        "best_val_accuracy": float(history["val_accuracy"].max()),
        "best_epoch": int(state["best_epoch"]),
        "seconds": round(time.perf_counter() - started, 2),
        "images_per_second": round(
            float(np.mean([t["images_per_second"] for t in state["timing"]])), 2
        ),
        "parameters": int(model.count_params()),
    }
    with atomic_path(out_dir / "model.keras") as tmp:
        model.save(tmp)
    with atomic_path(out_dir / "best.keras") as tmp:
        shutil.copyfile(backup / "best.keras", tmp)
    failpoint("train.writing_outputs")
    write_tsv(out_dir / "batches.tsv", table(state["batches"], BATCH_COLUMNS))
    with atomic_path(out_dir / VALIDATION_RECORD) as tmp:
        save_validation_record(tmp, record)
    write_run_tables(
        out_dir,
        history=history,
        timing=table(state["timing"], TIMING_COLUMNS),
        predictions=predictions,
        metrics=metrics,
        resolved_config=resolved_config,
    )
    shutil.rmtree(backup)
    return metrics
