"""Learning-rate schedules from a run's `lr_schedule` and `warmup_epochs`: Keras' own
(CosineDecay, PiecewiseConstantDecay) and a linear warm-up in front of them.

Schedules are per step, as Keras' are: the optimizer evaluates them at its `iterations`, which
a saved model keeps, so a run resumed from its backup continues its schedule where it was.
`simtrain.training.layers` imports this module, so whatever loads a saved model (registering
simtrain's layers that way) can deserialize its optimizer's warm-up too.
"""

from __future__ import annotations

import keras
import numpy as np

from simtrain.training.options import TrainingOptions

Schedule = keras.optimizers.schedules.LearningRateSchedule


@keras.saving.register_keras_serializable(package="simtrain")
class LinearWarmup(Schedule):
    """`target * step / warmup_steps` for the first `warmup_steps` steps (from 0, as
    CosineDecay's warm-up), then `after(step - warmup_steps)`, or `target` when `after` is
    None."""

    def __init__(self, target: float, warmup_steps: int, after: Schedule | None = None):
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}")
        super().__init__()
        self.target = target
        self.warmup_steps = warmup_steps
        self.after = after

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = self.target * step / self.warmup_steps
        if self.after is None:
            later = keras.ops.convert_to_tensor(self.target, "float32")
        else:
            later = keras.ops.cast(self.after(step - self.warmup_steps), "float32")
        return keras.ops.where(step < self.warmup_steps, warmup, later)

    def get_config(self):
        after = None if self.after is None else keras.saving.serialize_keras_object(self.after)
        return {"target": self.target, "warmup_steps": self.warmup_steps, "after": after}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config["after"] is not None:
            config["after"] = keras.saving.deserialize_keras_object(config["after"])
        return cls(**config)


def learning_rate_schedule(
    options: TrainingOptions, learning_rate: float, *, steps_per_epoch: int, epochs: int
) -> float | Schedule:
    """What the optimizer's `learning_rate` is: the constant rate, or a per-step schedule.

    The warm-up rises linearly from 0 to `learning_rate` over `warmup_epochs`; the schedule's
    epochs count from its end (cosine decays over the remaining epochs; step drops every
    `every_epochs` after it). reduce_on_plateau keeps a constant rate, which the
    ReduceLROnPlateau callback lowers (simtrain.training.callbacks).
    """
    schedule = options.lr_schedule or {"kind": None}
    warmup_steps = options.warmup_epochs * steps_per_epoch
    kind = schedule["kind"]
    if kind == "cosine":
        decay_steps = (epochs - options.warmup_epochs) * steps_per_epoch
        if not warmup_steps:
            return keras.optimizers.schedules.CosineDecay(
                learning_rate, decay_steps, alpha=schedule["alpha"]
            )
        return keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps,
            alpha=schedule["alpha"],
            warmup_target=learning_rate,
            warmup_steps=warmup_steps,
        )
    after = None
    if kind == "step":
        every = schedule["every_epochs"] * steps_per_epoch
        drops = range(1, (epochs - options.warmup_epochs - 1) // schedule["every_epochs"] + 1)
        # PiecewiseConstantDecay keeps values[k] while step <= boundaries[k]: the boundary is
        # the last step before a drop.
        after = keras.optimizers.schedules.PiecewiseConstantDecay(
            [k * every - 1 for k in drops],
            [learning_rate * schedule["drop"] ** k for k in (0, *drops)],
        )
    if warmup_steps:
        return LinearWarmup(learning_rate, warmup_steps, after)
    return learning_rate if after is None else after


def rate_of_step(optimizer: keras.optimizers.Optimizer, schedule: float | Schedule, step) -> float:
    """The learning rate the optimizer applied at (0-based) `step`: the schedule's value there,
    or the optimizer's current rate when it has no schedule (constant or set by a callback)."""
    if isinstance(schedule, Schedule):
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def last_step_rate(model: keras.Model, schedule: float | Schedule) -> float:
    """The rate of the last step the model's optimizer took (its first before any step)."""
    step = max(int(np.asarray(keras.ops.convert_to_numpy(model.optimizer.iterations))) - 1, 0)
    return rate_of_step(model.optimizer, schedule, step)
