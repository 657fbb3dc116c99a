"""How a deep run is compiled from its training options (`simtrain.training.options`): the
loss with label smoothing, the optimizer with weight decay on the learning-rate schedule
(`simtrain.training.schedules`), and the BatchNormalization momentum."""

from __future__ import annotations

import keras

from simtrain.training.models import make_optimizer
from simtrain.training.options import TrainingOptions
from simtrain.training.precise_bn import batchnorm_layers
from simtrain.training.schedules import Schedule


def make_loss(label_smoothing: float) -> keras.losses.Loss:
    """Categorical cross-entropy, against targets smoothed towards uniform by
    `label_smoothing` (training only: simtrain scores validation with the plain one)."""
    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)


def compile_model(
    model: keras.Model, optimizer: str, schedule: float | Schedule, options: TrainingOptions
) -> None:
    """Set the BatchNorm momentum, then compile with the options' loss and the optimizer
    `optimizer` on the learning rate `schedule` (`learning_rate_schedule`)."""
    if options.batchnorm_momentum is not None:
        for layer in batchnorm_layers(model):
            layer.momentum = options.batchnorm_momentum
    model.compile(
        optimizer=make_optimizer(optimizer, schedule, options.weight_decay),
        loss=make_loss(options.label_smoothing),
        metrics=["accuracy"],
    )
