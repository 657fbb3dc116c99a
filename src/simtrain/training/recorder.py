"""What a deep run keeps while it trains: per-batch and per-epoch tables, the per-image
validation record, the best epoch's model, and a resumable backup after every epoch
(`Recorder`, its `saver()`, `restore`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from simtrain.common.failpoints import failpoint
from simtrain.common.files import atomic_path, recover_directory
from simtrain.training.batches import PackedBatches
from simtrain.training.callbacks import save_callback_states
from simtrain.training.epoch_weights import carry_epoch_weights
from simtrain.training.options import CHECKPOINT_MONITORS, MONITORS
from simtrain.training.schedules import Schedule, last_step_rate
from simtrain.training.tables import per_image_scores

log = logging.getLogger(__name__)

VALIDATION_RECORD = "validation_record.npz"


def seed_states(model: keras.Model) -> list[keras.Variable]:
    # Augmentation RNG states are not part of a saved .keras model, yet resuming must
    # continue their streams exactly.
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class Recorder(keras.callbacks.Callback):
    """Per-batch and per-epoch tables plus a resumable backup after every epoch.

    The backup (model with optimizer state, augmentation RNG states, best model, the
    tables so far and the state of the `resumable` callbacks) replaces the previous one
    atomically, so a kill at any moment leaves the last completed epoch to resume from.
    Keras' BackupAndRestore does not keep the RNG states, and ModelCheckpoint writes in place.

    The best model is the epoch with the lowest val_loss or the highest val_accuracy
    (`monitor`; the first such epoch on a tie). Callbacks that read this epoch's val_* go
    between the Recorder, which logs them, and its `saver()`, which writes the backup.
    """

    def __init__(
        self,
        backup: Path,
        key: str,
        train: PackedBatches,
        validation: PackedBatches,
        state: dict,
        record: dict[str, list[np.ndarray]],
        *,
        monitor: str = "val_loss",
        schedule: float | Schedule | None = None,
        resumable: list[keras.callbacks.Callback] | None = None,
    ):
        super().__init__()
        self.backup, self.key = backup, key
        self.train, self.validation = train, validation
        self.state = state
        self.record = record
        if monitor not in CHECKPOINT_MONITORS:
            raise ValueError(f"monitor must be one of {CHECKPOINT_MONITORS}, got {monitor!r}")
        self.monitor, self.schedule = monitor, schedule
        self.resumable = resumable or []
        self.improved = False
        self.last_scored: np.ndarray | None = None  # the last validation's images, in order
        self.last_probabilities: np.ndarray | None = None

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
        probabilities = self.model.predict(self.validation, verbose=0)
        # The order predict() returns: each batch's indices, sorted as __getitem__ reads them.
        scored = np.concatenate(
            [np.sort(self.validation.batch_indices(epoch, s)) for s in range(len(self.validation))]
        )
        losses, correct = per_image_scores(probabilities, self.validation.split.labels[scored])
        self.last_scored, self.last_probabilities = scored, probabilities
        logs["val_loss"], logs["val_accuracy"] = float(losses.mean()), float(correct.mean())
        # An image scored twice in one epoch (a stream crossing a pass) keeps its last result.
        outcome = np.full(len(self.validation.split), -1, dtype=np.int8)
        per_image_loss = np.full(len(self.validation.split), np.nan, dtype=np.float32)
        outcome[scored], per_image_loss[scored] = correct, losses
        self.record["correct"].append(outcome)
        self.record["loss"].append(per_image_loss)

    def final_probabilities(self) -> np.ndarray | None:
        """The final model's probabilities for every validation image in order, when its last
        validation scored exactly those (full, unshuffled validation); else None."""
        if self.last_scored is None:
            return None
        everything = np.arange(len(self.validation.split))
        return self.last_probabilities if np.array_equal(self.last_scored, everything) else None

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
            # The rate of the epoch's last step (a schedule changes it every step), before any
            # callback after this one lowers it for the next epoch.
            "learning_rate": last_step_rate(self.model, self.schedule),
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
        value, best = row[self.monitor], self.state.get("best_value")
        self.improved = best is None or (
            value < best if MONITORS[self.monitor] == "min" else value > best
        )
        if self.improved:
            self.state["best_value"], self.state["best_epoch"] = value, epoch + 1

    def saver(self) -> keras.callbacks.Callback:
        """The callback that writes each epoch's backup: last of those that act on the epoch."""
        return _BackupSaver(self)

    def save_backup(self, improved: bool) -> None:
        with atomic_path(self.backup) as tmp:
            tmp.mkdir()
            self.model.save(tmp / "model.keras")
            epoch = len(self.state["history"])
            carry_epoch_weights(self.model, self.backup, tmp, epoch, self.params.get("epochs"))
            if improved:
                self.model.save(tmp / "best.keras")
            else:
                os.link(self.backup / "best.keras", tmp / "best.keras")
            np.savez(tmp / "seeds.npz", *[np.asarray(v.numpy()) for v in seed_states(self.model)])
            save_validation_record(tmp / VALIDATION_RECORD, self.record)
            self.state["callbacks"] = save_callback_states(self.resumable, tmp, self.backup)
            (tmp / "state.json").write_text(json.dumps({**self.state, "key": self.key}))


class _BackupSaver(keras.callbacks.Callback):
    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder

    def on_epoch_end(self, epoch, logs=None):
        self.recorder.save_backup(self.recorder.improved)
        failpoint("train.after_backup")


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
