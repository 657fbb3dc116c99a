"""Batches from the packed uint8 arrays, read by memory map, for any Keras backend.

Batch i of epoch e is a pure function of (seed, e, i), so a resumed run sees exactly the
batches an uninterrupted one would have, whatever the number of loader threads.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from simtrain.data.arrays import PackedSplit


class PackedBatches(keras.utils.PyDataset):
    """One epoch of `steps` batches over `indices` of a packed split.

    The data are a stream of passes; each pass visits every index once (in a seeded
    permutation when `shuffle`, else in order) in ceil(n / batch_size) batches, the last
    one smaller, like Keras 2's `flow_from_directory`. An epoch of `steps` batches
    continues the stream where the previous epoch stopped, so `steps` below a full pass
    reproduces epochs that each see only part of the data. With `shuffle=False` and
    `continue_stream=False`, every epoch serves the same first `steps` batches.
    """

    def __init__(
        self,
        split: PackedSplit,
        batch_size: int,
        *,
        indices: np.ndarray | None = None,
        steps: int | None = None,
        shuffle: bool = True,
        continue_stream: bool = True,
        seed: int = 0,
        workers: int = 1,
        max_queue_size: int = 8,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.split = split
        self.batch_size = batch_size
        self.indices = np.arange(len(split)) if indices is None else np.asarray(indices)
        self.batches_per_pass = math.ceil(len(self.indices) / batch_size)
        self.steps = self.batches_per_pass if steps is None else steps
        if self.steps < 1:
            raise ValueError(f"steps must be positive, got {self.steps}")
        self.shuffle = shuffle
        self.continue_stream = continue_stream
        self.seed = seed
        self.epoch = 0  # set by EpochSync before each epoch
        self.num_classes = len(split.classes)

    def __len__(self) -> int:
        return self.steps

    def _pass_order(self, number: int) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(number,)))
        return self.indices[rng.permutation(len(self.indices))]

    def batch_indices(self, epoch: int, step: int) -> np.ndarray:
        position = (epoch * self.steps if self.continue_stream else 0) + step
        number, batch = divmod(position, self.batches_per_pass)
        order = self._pass_order(number)
        return order[batch * self.batch_size : (batch + 1) * self.batch_size]

    def epoch_indices(self, epoch: int) -> np.ndarray:
        return np.concatenate([self.batch_indices(epoch, step) for step in range(self.steps)])

    def __getitem__(self, step: int):
        if not 0 <= step < self.steps:
            raise IndexError(step)
        # Sorted reads are sequential on disk; order within a batch does not matter.
        chosen = np.sort(self.batch_indices(self.epoch, step))
        images = np.asarray(self.split.images[chosen])
        targets = np.eye(self.num_classes, dtype="float32")[self.split.labels[chosen]]
        return images, targets


class EpochSync(keras.callbacks.Callback):
    """Tell the datasets which epoch is starting (Keras numbers epochs from 0)."""

    def __init__(self, *datasets: PackedBatches):
        super().__init__()
        self.datasets = datasets

    def on_epoch_begin(self, epoch, logs=None):
        for dataset in self.datasets:
            dataset.epoch = epoch
