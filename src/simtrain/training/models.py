"""Model registry: built-in classifiers and plug-ins by import path.

A classifier builder is `f(input_shape: tuple, num_classes: int, **model_params) ->
keras.Model` mapping standardised float images to class probabilities (`model_params`: the
run's, checked by `simtrain.training.model_params`). `build_model` wraps it with the uint8
input, augmentation and per-image standardisation, so every model gets the same
preprocessing, inside the model, on the accelerator.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras

from simtrain.common.plugins import PLUGIN_SYNTAX, is_plugin, resolve_plugin
from simtrain.training.applications import ARCHITECTURES, application_builder
from simtrain.training.layers import RandomAffine, Standardize
from simtrain.training.model_params import check_builder_parameters

Builder = Callable[[tuple[int, int, int], int], keras.Model]

# Not a Keras model: handled by simtrain.training.baseline.
BASELINE = "baseline"


def resnet50(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """The original case: ResNet50 without weights + global average pooling + softmax."""
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape)
    features = keras.layers.GlobalAveragePooling2D()(base.output)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(features)
    return keras.Model(base.input, outputs, name="resnet50")


def small_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    filters: Sequence[int] = (16, 32, 64, 96, 128),
    dropout: float = 0.0,
) -> keras.Model:
    """Five strided conv blocks (16-128 filters): ~0.1 M parameters, fast on a CPU.

    model_params: `filters`, one width per block (as many blocks as widths); `dropout`, the
    rate of a Dropout layer before the softmax head (none at 0).
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for i, width in enumerate(filters):
        # A 5x5 stride-2 stem cuts 256^2 inputs down cheaply before the wider layers.
        x = keras.layers.Conv2D(
            width, 5 if i == 0 else 3, strides=2, padding="same", use_bias=False
        )(x)
        # Momentum 0.9, not Keras' 0.99: a short CPU run takes a few hundred steps, too few
        # for 0.99's ~100-step average to forget the first, untrained batches.
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


BUILTIN_MODELS: dict[str, Builder] = {"resnet50": resnet50, "small_cnn": small_cnn}


def resolve_model(name: str, search_path: str | os.PathLike | None = None) -> Builder:
    """A built-in model name, a keras.applications architecture by its Keras name
    (`simtrain.training.applications`) or a plug-in "package.module:function"."""
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name]
    if name in ARCHITECTURES:
        return application_builder(name)
    if not is_plugin(name):
        raise ValueError(
            f"unknown model {name!r}: expected one of {sorted([*BUILTIN_MODELS, BASELINE])}, "
            f"a keras.applications architecture ({', '.join(ARCHITECTURES)}) "
            f"or a plug-in {PLUGIN_SYNTAX}"
        )
    return resolve_plugin(name, "model", search_path)


# What a plug-in module may define that a saved model refers to by class name.
_SERIALIZABLE = (
    keras.layers.Layer,
    keras.losses.Loss,
    keras.metrics.Metric,
    keras.initializers.Initializer,
    keras.regularizers.Regularizer,
    keras.constraints.Constraint,
)


def custom_objects(name: str, search_path: str | os.PathLike | None = None) -> dict[str, type]:
    """The classes a plug-in model's module defines, for `keras.models.load_model`.

    Resuming a plug-in model from its backup needs them unless the plug-in registered them
    with `keras.saving.register_keras_serializable`; built-in models and keras.applications
    architectures need none (simtrain's own layers are registered; Keras finds its own).
    """
    if name in BUILTIN_MODELS or name in ARCHITECTURES:
        return {}
    module = sys.modules[resolve_model(name, search_path).__module__]
    return {
        attribute: value
        for attribute, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, _SERIALIZABLE)
        and value.__module__ == module.__name__
    }


def build_model(
    name: str,
    *,
    image_size: int,
    num_classes: int,
    augmentation: Mapping[str, Any],
    standardize: bool,
    seed: int,
    pixel_dtype: str = "uint8",
    search_path: str | os.PathLike | None = None,
    model_params: Mapping[str, Any] | None = None,
) -> keras.Model:
    """uint8 images -> [augmentation] -> [standardisation] -> classifier -> probabilities.

    pixel_dtype "uint16" (bit_depth 16) takes uint16 images instead, scaled by 1/65535 to the
    same [0, 1] range, so 16-bit images are never reduced to 8 bits."""
    input_shape = (image_size, image_size, 1)
    if pixel_dtype not in ("uint8", "uint16"):
        raise ValueError(f"pixel_dtype must be uint8 or uint16, got {pixel_dtype!r}")
    inputs = keras.Input(input_shape, dtype=pixel_dtype, name="image")
    top = 255 if pixel_dtype == "uint8" else 65535
    x = keras.layers.Rescaling(1 / top, name="to_float")(inputs)
    augment = RandomAffine(**augmentation, seed=seed, name="augment")
    if not augment.is_identity:
        x = augment(x)
    if standardize:
        x = Standardize(name="standardize")(x)
    builder = resolve_model(name, search_path)
    check_builder_parameters(builder, model_params or {})  # names the key, unlike a TypeError
    classifier = builder(input_shape, num_classes, **(model_params or {}))
    outputs = classifier(x)
    return keras.Model(inputs, outputs, name=f"simtrain_{classifier.name}")


def preprocessing(model: keras.Model, *, augment: bool) -> list[keras.layers.Layer]:
    """The layers before `build_model`'s classifier that `classifier_inputs` applies: scaling
    to [0, 1], the augmentation when `augment`, standardisation; each only if the model has it."""
    names = {layer.name for layer in model.layers}
    wanted = ("to_float", "augment", "standardize") if augment else ("to_float", "standardize")
    return [model.get_layer(name) for name in wanted if name in names]


def classifier_inputs(model: keras.Model, images, *, augment: bool):
    """What `build_model`'s classifier receives for uint8 `images`: scaled to [0, 1], warped
    by the augmentation layer in training mode when `augment` (else left unwarped, as at
    inference), then standardised; each step only if the model has it."""
    return apply_preprocessing(preprocessing(model, augment=augment), images)


def apply_preprocessing(layers: list[keras.layers.Layer], images):
    x = images
    for layer in layers:
        x = layer(x, training=True) if isinstance(layer, RandomAffine) else layer(x)
    return x


def make_optimizer(
    name: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    weight_decay: float | None = None,
) -> keras.optimizers.Optimizer:
    """Keras' optimizer `name`; `weight_decay` (None: the optimizer's own default, AdamW's
    0.004, none for the others) is Keras 3's decoupled decay, which every optimizer applies
    the same way (each step, w -= learning_rate * weight_decay * w): adam with a weight_decay
    is adamw."""
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
    }
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}: expected one of {sorted(optimizers)}")
    decay = {} if weight_decay is None else {"weight_decay": weight_decay}
    return optimizers[name](learning_rate=learning_rate, **decay)
