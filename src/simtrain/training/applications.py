"""keras.applications architectures as classifiers, by their Keras names (`ResNet50V2`, ...).

The table of supported architectures lives here, free of Keras, because the workflow checks
every run's `model:` while planning (`simtrain.config.check_runs`): an architecture that
cannot take the run's images must fail in seconds, before any job, and planning must not
pay for importing Keras. Only `build_application` imports Keras.

Every architecture is built with `weights=None` (ImageNet weights expect 3-channel RGB
images; ours are greyscale), on greyscale input of the run's `image_size`, with global
average pooling and a softmax head, like `simtrain.training.models.resnet50`. The
architecture's own input preprocessing is switched off or undone: `build_model` already
standardises every image.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

# ImageNet preprocessing inside the model (rescaling and ImageNet mean/std) would undo our
# standardisation; EfficientNetV2, MobileNetV3 and ConvNeXt let us switch it off.
NO_PREPROCESSING: Mapping[str, Any] = {"include_preprocessing": False}


@dataclass(frozen=True)
class Family:
    """Architectures that share one Keras constructor signature and input constraints.

    `min_size` is the smallest side Keras accepts (its `obtain_input_shape(min_size=...)`,
    or MobileNetV3's own check): below it the strided stem and reductions leave no pixels.
    `input_scale` multiplies the standardised images before the architecture, to cancel a
    fixed rescaling it applies to its input and that no argument switches off.
    `parameters` are the constructor's arguments a run may set (`model_params`): those that
    shape the network without a classification top (width `alpha`, ...).
    """

    name: str
    members: tuple[str, ...]
    min_size: int = 32
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    input_scale: float = 1.0
    parameters: tuple[str, ...] = ()


FAMILIES: tuple[Family, ...] = (
    Family("ResNet", ("ResNet50", "ResNet101", "ResNet152")),
    Family("ResNetV2", ("ResNet50V2", "ResNet101V2", "ResNet152V2")),
    # EfficientNet (V1) has no include_preprocessing: its stem is Rescaling(1/255) then a
    # Normalization layer, which with weights=None is never adapted (mean 0, variance 1: the
    # identity; only ImageNet weights add the std rescaling). Our standardised images (std 1)
    # would reach the stem convolution at std 1/255, and the stem BatchNorm (epsilon 1e-3)
    # cannot restore a conv output variance of ~1e-6: activations would start ~30x too
    # small. A Rescaling(255) adapter in front cancels the 1/255 exactly.
    Family(
        "EfficientNet",
        (
            "EfficientNetB0",
            "EfficientNetB1",
            "EfficientNetB2",
            "EfficientNetB3",
            "EfficientNetB4",
            "EfficientNetB5",
            "EfficientNetB6",
            "EfficientNetB7",
        ),
        input_scale=255.0,
    ),
    Family(
        "EfficientNetV2",
        (
            "EfficientNetV2B0",
            "EfficientNetV2B1",
            "EfficientNetV2B2",
            "EfficientNetV2B3",
            "EfficientNetV2S",
            "EfficientNetV2M",
            "EfficientNetV2L",
        ),
        kwargs=NO_PREPROCESSING,
    ),
    Family("MobileNet", ("MobileNet",), parameters=("alpha", "depth_multiplier")),
    Family("MobileNetV2", ("MobileNetV2",), parameters=("alpha",)),
    Family(
        "MobileNetV3",
        ("MobileNetV3Small", "MobileNetV3Large"),
        kwargs=NO_PREPROCESSING,
        parameters=("alpha", "minimalistic"),
    ),
    Family("DenseNet", ("DenseNet121", "DenseNet169", "DenseNet201")),
    Family(
        "ConvNeXt",
        ("ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"),
        kwargs=NO_PREPROCESSING,
    ),
    Family("Xception", ("Xception",), min_size=71),
    Family("InceptionV3", ("InceptionV3",), min_size=75),
    Family("InceptionResNetV2", ("InceptionResNetV2",), min_size=75),
    Family("VGG", ("VGG16", "VGG19")),
)

ARCHITECTURES: dict[str, Family] = {
    member: family for family in FAMILIES for member in family.members
}

# The keras.applications builders left out (they do build on greyscale input; they are just
# not tested here), so a run naming one is told that rather than "unknown". A test checks that
# ARCHITECTURES and these cover keras.applications, so a new Keras architecture is noticed.
NOT_SUPPORTED = ("NASNetLarge", "NASNetMobile")


def closest_name(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate `name` most likely misspells, case aside (`efficientnetb0`); on a tie
    the one that also matches the case (`ResNet5O` -> `ResNet50`, `resnet5o` -> `resnet50`)."""

    def similarity(candidate: str) -> tuple[float, float]:
        return (
            difflib.SequenceMatcher(None, name.lower(), candidate.lower()).ratio(),
            difflib.SequenceMatcher(None, name, candidate).ratio(),
        )

    best = max(candidates, key=similarity, default=None)
    return best if best is not None and similarity(best)[0] >= 0.6 else None


def architecture_problem(
    name: str, image_size: int, other_models: Sequence[str] = ()
) -> str | None:
    """Why `model: name` cannot classify `image_size` x `image_size` greyscale images, or None.

    Checked at plan time, without Keras. `other_models` are the names accepted besides the
    architectures (the built-in models), offered for a typo too.
    """
    family = ARCHITECTURES.get(name)
    if family is not None:
        if image_size < family.min_size:
            return (
                f"{name} needs images of at least {family.min_size} px; image_size is {image_size}"
            )
        return None
    message = f"unknown model {name!r}"
    if name in NOT_SUPPORTED:
        message += " (a keras.applications architecture simtrain does not support)"
    suggestion = closest_name(name, [*other_models, *ARCHITECTURES])
    if suggestion is not None:
        message += f"; did you mean {suggestion!r}?"
    return "\n".join(
        [
            message,
            f"expected one of {list(other_models)}, a plug-in 'package.module:function', "
            "or a keras.applications architecture:",
            *(f"  {family.name}: {', '.join(family.members)}" for family in FAMILIES),
        ]
    )


def build_application(
    name: str, input_shape: tuple[int, int, int], num_classes: int, **params: Any
) -> keras.Model:
    """keras.applications `name` without weights + global average pooling + softmax.

    A classifier builder for `simtrain.training.models.build_model`, which feeds it
    standardised float images of `input_shape`; `params` (the run's `model_params`) go to
    the Keras constructor, and must be among the family's `parameters`.
    """
    import keras

    family = ARCHITECTURES.get(name)
    if family is None:
        raise ValueError(architecture_problem(name, input_shape[0]))
    unknown = sorted(set(params) - set(family.parameters))
    if unknown:
        raise ValueError(
            f"model_params.{unknown[0]}: {name} takes no parameter {unknown[0]!r} "
            f"(its parameters: {', '.join(family.parameters) or 'none'})"
        )
    inputs = keras.Input(input_shape, name="standardized")
    x = inputs
    if family.input_scale != 1.0:
        x = keras.layers.Rescaling(family.input_scale, name="input_adapter")(x)
    # input_tensor makes the adapter (if any) part of the architecture's own graph.
    base = getattr(keras.applications, name)(
        include_top=False,
        weights=None,
        input_tensor=x,
        input_shape=input_shape,
        **family.kwargs,
        **params,
    )
    features = keras.layers.GlobalAveragePooling2D(name="head_pool")(base.output)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="predictions"
    )(features)
    return keras.Model(inputs, outputs, name=name)


def application_builder(name: str) -> Callable[..., keras.Model]:
    """A builder `f(input_shape, num_classes, **params)` for architecture `name` (see
    models.Builder)."""

    def build(input_shape: tuple[int, int, int], num_classes: int, **params: Any) -> keras.Model:
        return build_application(name, input_shape, num_classes, **params)

    build.__name__ = build.__qualname__ = name
    return build
