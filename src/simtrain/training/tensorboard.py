"""TensorBoard logs of a deep run as it trains (config `execution: tensorboard: true`).

Per batch and per epoch, the values the run's batches.tsv and history.tsv hold (per-batch
loss and accuracy, not Keras' running means), laid out like keras.callbacks.TensorBoard's
(train/ and validation/, `batch_loss`, `epoch_loss`, ...) so that training and validation
curves overlay. Written with the tensorboard package alone: no TensorFlow needed (JAX runs).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import keras
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from simtrain.training.fit import BACKUP_DIR

TENSORBOARD_DIR = "tensorboard"
# history.tsv columns shown as validation curves, under the training curve's name.
VALIDATION_COLUMNS = {"val_loss": "loss", "val_accuracy": "accuracy"}


class TensorBoardLog(keras.callbacks.Callback):
    """Writes out_dir/tensorboard/ from the rows the run's recorder has saved in its backup
    (out_dir/.backup/state.json) by the end of each epoch, so the logs hold exactly the
    tables' values; a resumed run keeps the logs of the epochs it resumes after."""

    def __init__(self, out_dir: str | Path):
        super().__init__()
        self.log_dir = Path(out_dir) / TENSORBOARD_DIR
        self.state_file = Path(out_dir) / BACKUP_DIR / "state.json"
        self.writers: dict[str, EventFileWriter] = {}
        self.epochs_written = 0

    def on_train_begin(self, logs=None):
        if not self.state_file.exists():  # a fresh start: earlier logs are another run's
            shutil.rmtree(self.log_dir, ignore_errors=True)
        self.writers = {
            split: EventFileWriter(str(self.log_dir / split)) for split in ("train", "validation")
        }

    def scalar(self, split: str, tag: str, value: float, step: int) -> None:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self.writers[split].add_event(Event(wall_time=time.time(), step=step, summary=summary))

    def on_epoch_end(self, epoch, logs=None):
        state = json.loads(self.state_file.read_text())
        for row in state["history"][self.epochs_written :]:
            step = row["epoch"]
            for column, value in row.items():
                if column == "epoch" or value is None:
                    continue
                if column in VALIDATION_COLUMNS:
                    self.scalar("validation", f"epoch_{VALIDATION_COLUMNS[column]}", value, step)
                else:
                    self.scalar("train", f"epoch_{column}", value, step)
            for batch in (b for b in state["batches"] if b["epoch"] == step):
                for column in ("loss", "accuracy"):
                    self.scalar("train", f"batch_{column}", batch[column], batch["step"])
        self.epochs_written = len(state["history"])
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
