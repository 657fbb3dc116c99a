"""Keras' EarlyStopping and ReduceLROnPlateau for a run's `early_stopping` and
`lr_schedule: {kind: reduce_on_plateau}`, resumable.

They act on the val_loss / val_accuracy that simtrain's Recorder logs (Keras does not
validate; the Recorder scores every image), so they run after it in the callback list, and
before the callback that writes the epoch's backup, which keeps their state: counters and best
values in state.json, EarlyStopping's best weights beside it. Keras resets that state in
`on_train_begin`; after a resume these put it back there, so the resumed run decides as the
uninterrupted one would. The learning rate ReduceLROnPlateau lowered is the optimizer's, saved
with the model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from simtrain.training.options import MONITORS, TrainingOptions

EARLY_STOPPING = "early_stopping"
REDUCE_ON_PLATEAU = "reduce_on_plateau"


def _plain(value: Any) -> Any:
    """A JSON-safe best value: Keras keeps it as whatever the logs held."""
    return None if value is None else float(np.asarray(value))


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose counters, best value and best weights survive a resume."""

    name = EARLY_STOPPING

    def __init__(self, saved: Mapping[str, Any] | None, saved_weights, **kwargs):
        super().__init__(**kwargs)
        self.saved, self.saved_weights = saved, saved_weights
        self.weights_changed = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.saved:
            self.wait, self.best = self.saved["wait"], self.saved["best"]
            self.best_epoch, self.stopped_epoch = (
                self.saved["best_epoch"],
                self.saved["stopped_epoch"],
            )
            self.best_weights = self.saved_weights

    def on_epoch_end(self, epoch, logs=None):
        before = self.best_weights
        super().on_epoch_end(epoch, logs)
        self.weights_changed = self.best_weights is not before

    @property
    def stopped(self) -> bool:
        return self.stopped_epoch > 0  # Keras never stops after the first epoch (epoch 0)

    def state(self) -> dict[str, Any]:
        return {
            "wait": int(self.wait),
            "best": _plain(self.best),
            "best_epoch": int(self.best_epoch),
            "stopped_epoch": int(self.stopped_epoch),
        }


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters and best value survive a resume."""

    name = REDUCE_ON_PLATEAU

    def __init__(self, saved: Mapping[str, Any] | None, **kwargs):
        super().__init__(**kwargs)
        self.saved = saved

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.saved:
            self.wait, self.best = self.saved["wait"], self.saved["best"]
            self.cooldown_counter = self.saved["cooldown_counter"]

    def state(self) -> dict[str, Any]:
        return {
            "wait": int(self.wait),
            "best": _plain(self.best),
            "cooldown_counter": int(self.cooldown_counter),
        }


def _weights_file(backup: Path) -> Path:
    return backup / f"{EARLY_STOPPING}_weights.npz"


def option_callbacks(
    options: TrainingOptions, saved: Mapping[str, Any], backup: Path
) -> list[keras.callbacks.Callback]:
    """The callbacks the options ask for, with the state `saved` in the backup (none for a
    fresh run)."""
    callbacks: list[keras.callbacks.Callback] = []
    schedule = options.lr_schedule
    if schedule is not None and schedule["kind"] == REDUCE_ON_PLATEAU:
        callbacks.append(
            ResumableReduceLROnPlateau(
                saved.get(REDUCE_ON_PLATEAU),
                monitor=schedule["monitor"],
                mode=MONITORS[schedule["monitor"]],
                factor=schedule["factor"],
                patience=schedule["patience"],
                min_delta=schedule["min_delta"],
                cooldown=schedule["cooldown"],
                min_lr=schedule["min_learning_rate"],
                verbose=1,
            )
        )
    stopping = options.early_stopping
    if stopping is not None:
        weights = None
        if saved.get(EARLY_STOPPING) and _weights_file(backup).exists():
            with np.load(_weights_file(backup)) as arrays:
                weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        callbacks.append(
            ResumableEarlyStopping(
                saved.get(EARLY_STOPPING),
                weights,
                monitor=stopping["monitor"],
                mode=MONITORS[stopping["monitor"]],
                patience=stopping["patience"],
                min_delta=stopping["min_delta"],
                restore_best_weights=stopping["restore_best_weights"],
                verbose=1,
            )
        )
    return callbacks


def save_callback_states(
    callbacks: list[keras.callbacks.Callback], directory: Path, previous: Path
) -> dict[str, Any]:
    """Write what `callbacks` need beyond their state dicts into the backup being made in
    `directory` (EarlyStopping's best weights: linked from the `previous` backup when
    unchanged) and return the state dicts, by callback name."""
    states = {}
    for callback in callbacks:
        states[callback.name] = callback.state()
        if isinstance(callback, ResumableEarlyStopping) and callback.best_weights is not None:
            if not callback.weights_changed and _weights_file(previous).exists():
                os.link(_weights_file(previous), _weights_file(directory))
            else:
                np.savez(_weights_file(directory), *callback.best_weights)
    return states


def stopped_early(states: Mapping[str, Any]) -> bool:
    """Whether the saved callback states say early stopping ended the run."""
    return bool(states.get(EARLY_STOPPING, {}).get("stopped_epoch", 0))


def early_stopping_summary(callbacks: list[keras.callbacks.Callback]) -> dict[str, Any] | None:
    """What metrics.json says about early stopping (epochs 1-based), or None without it."""
    for callback in callbacks:
        if isinstance(callback, ResumableEarlyStopping):
            return {
                "monitor": callback.monitor,
                "stopped_epoch": callback.stopped_epoch + 1 if callback.stopped else None,
                "best_epoch": callback.best_epoch + 1,
                "best": _plain(callback.best),
                "restored_best_weights": bool(
                    callback.restore_best_weights and callback.best_weights is not None
                ),
            }
    return None
