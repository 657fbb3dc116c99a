"""The weights after every epoch, kept for small models so the diagnosis can attribute a jump
of the validation curve at the epoch where it happened (not only on the final model).

Kept when all epochs together stay under EPOCH_WEIGHTS_LIMIT_BYTES (the small CNN: ~0.4 MB an
epoch, 100 epochs in 40 MB); a ResNet50's 94 MB an epoch would fill a disk over many runs, so
its diagnosis falls back to the final model and says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from simtrain.common.files import atomic_path

EPOCH_WEIGHTS_DIR = "epochs"
EPOCH_WEIGHTS_LIMIT_BYTES = 64 * 2**20


def epoch_weights_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    """Where the weights after `epoch` (1-based) are kept."""
    return Path(run_dir) / EPOCH_WEIGHTS_DIR / f"epoch-{epoch:03d}.weights.h5"


def keeps_epoch_weights(model: keras.Model, epochs: int) -> bool:
    """Whether all epochs' weights (float32) fit under the limit."""
    return 4 * model.count_params() * epochs <= EPOCH_WEIGHTS_LIMIT_BYTES


def save_epoch_weights(model: keras.Model, directory: str | os.PathLike, epoch: int) -> None:
    """Write the weights after `epoch` into `directory` (a run folder or its backup)."""
    path = epoch_weights_path(directory, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)


def carry_epoch_weights(
    model: keras.Model, previous: Path, backup: Path, epoch: int, epochs: int | None
) -> None:
    """Into a new `backup` folder: the earlier epochs' weights from the `previous` backup
    (hard links: nothing is copied) and this `epoch`'s, when the model is small enough to keep
    `epochs` of them."""
    if epochs is None or not keeps_epoch_weights(model, epochs):
        return
    (backup / EPOCH_WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
    for earlier in range(1, epoch):
        source = epoch_weights_path(previous, earlier)
        if source.exists():
            os.link(source, epoch_weights_path(backup, earlier))
    save_epoch_weights(model, backup, epoch)


def publish_epoch_weights(backup: Path, out_dir: Path) -> None:
    """Move the kept weights from the finished run's backup into its folder (an empty
    `epochs/` when none were kept), replacing an older one."""
    with atomic_path(Path(out_dir) / EPOCH_WEIGHTS_DIR) as tmp:
        source = Path(backup) / EPOCH_WEIGHTS_DIR
        if source.is_dir():
            os.replace(source, tmp)
        else:
            tmp.mkdir()
