"""Run one training job in its own process: `python -m tests.train_job SPEC.json`.

Tests use it to kill a real training process at a chosen batch (spec key "kill_at":
[epoch, batch], both 1-based epoch / 0-based batch) and to train under another backend.
"""

import json
import logging
import os
import signal
import sys
from pathlib import Path

import keras

from simtrain.training.fit import train_run


class KillAt(keras.callbacks.Callback):
    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.target = (epoch, batch)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.target:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    spec = json.loads(Path(sys.argv[1]).read_text())
    kill_at = spec.pop("kill_at", None)
    train_run(**spec, callbacks=[KillAt(*kill_at)] if kill_at else [])
