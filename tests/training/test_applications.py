"""keras.applications architectures by name: each family trains on greyscale images at its
minimum size, and a name or size they cannot take fails at plan time, without Keras."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
from snakemake.utils import validate

from simtrain.config import ConfigError, check_runs
from simtrain.training.applications import (
    ARCHITECTURES,
    FAMILIES,
    NOT_SUPPORTED,
    Family,
    build_application,
)
from simtrain.training.models import build_model, custom_objects, resnet50, resolve_model
from tests.conftest import ROOT

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
NUM_CLASSES = 3
AUGMENTATION = {"shear": 0.2, "zoom": 0.2, "horizontal_flip": True}


def family_id(family: Family) -> str:
    return family.name


def build(name: str, size: int) -> keras.Model:
    """The workflow's model around architecture `name`: uint8 -> augment -> standardise."""
    return build_model(
        name,
        image_size=size,
        num_classes=NUM_CLASSES,
        augmentation=AUGMENTATION,
        standardize=True,
        seed=0,
    )


def images(size: int, count: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 1), dtype=np.uint8)


@pytest.fixture(scope="module", params=FAMILIES, ids=family_id)
def family_model(request) -> tuple[Family, keras.Model]:
    """One member of each family, built at the family's minimum size (built once per family)."""
    family = request.param
    keras.utils.set_random_seed(0)
    return family, build(family.members[0], family.min_size)


def first_conv(classifier: keras.Model) -> keras.layers.Layer:
    """The architecture's stem convolution, the bottom of the network: a Conv2D, or the small
    model holding it (ConvNeXt's stem is a Sequential of Conv2D and LayerNormalization)."""

    def has_conv(layer: keras.layers.Layer) -> bool:
        if isinstance(layer, keras.Model):
            return any(map(has_conv, layer.layers))
        return isinstance(layer, keras.layers.Conv2D)

    return next(filter(has_conv, classifier.layers))


def kernel(layer: keras.layers.Layer) -> keras.Variable:
    """The first kernel a layer (or the small model first_conv returned) holds."""
    return next(weight for weight in layer.trainable_weights if weight.path.endswith("kernel"))


def test_every_family_trains_one_step_on_greyscale_images_at_its_minimum_size(family_model):
    family, model = family_model
    size = family.min_size
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        run_eagerly=True,  # one step: tracing the train step would cost more than it saves
    )
    classifier = model.get_layer(family.members[0])
    # Bottom and top: the step's gradient reached the stem through the whole architecture.
    # (Not every weight moves: a BatchNorm beta that reaches the next BatchNorm through
    # linear layers only, as in MobileNetV2's projections, has an exactly zero gradient.)
    watched = {"stem": kernel(first_conv(classifier)), "head": kernel(classifier.layers[-1])}
    before = {part: np.array(weight) for part, weight in watched.items()}
    model.fit(images(size), np.array([0, 1]), batch_size=2, epochs=1, verbose=0)
    assert model.output.shape == (None, NUM_CLASSES)
    probabilities = np.asarray(model(images(size), training=False))
    assert probabilities.shape == (2, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    for part, weight in watched.items():
        assert not np.array_equal(np.array(weight), before[part]), f"{part} did not change"


def test_the_architecture_sees_the_standardised_image_unscaled(family_model):
    """The first convolution's input is our standardised image itself (plus zero padding):
    the architecture's own rescaling is switched off or, for EfficientNet, undone."""
    family, model = family_model
    classifier = model.get_layer(family.members[0])
    probe = keras.Model(classifier.input, first_conv(classifier).input)
    standardised = np.random.default_rng(1).standard_normal(
        (1, family.min_size, family.min_size, 1)
    )
    seen = np.asarray(probe(standardised.astype("float32")))
    np.testing.assert_allclose(
        np.sort(seen[seen != 0]), np.sort(standardised.ravel()), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_keras_refuses_one_pixel_below_the_tables_minimum_size(name):
    """Keras' own check names the minimum, so the plan-time table cannot drift from it.
    (Building at the minimum itself is shown for one member per family above; members of
    a family share their constructor and its size check.)"""
    family = ARCHITECTURES[name]
    below = family.min_size - 1
    minimum = rf"at least {family.min_size}x{family.min_size}\b"
    with pytest.raises(ValueError, match=minimum):
        getattr(keras.applications, name)(
            include_top=False, weights=None, input_shape=(below, below, 1), **family.kwargs
        )


def test_the_table_and_the_unsupported_list_cover_every_keras_application():
    builders = {name for name in dir(keras.applications) if name[0].isupper()}
    assert set(ARCHITECTURES) | set(NOT_SUPPORTED) == builders
    assert not set(ARCHITECTURES) & set(NOT_SUPPORTED)


@pytest.mark.parametrize("name", ["EfficientNetB0", "ConvNeXtTiny", "InceptionResNetV2"])
def test_a_saved_model_loads_back_with_the_custom_objects_training_passes(name, tmp_path):
    """The input adapter and the architectures' own unregistered layers (ConvNeXt's
    LayerScale, InceptionResNetV2's CustomScaleLayer) survive the model.keras round trip
    that resuming and diagnosing use."""
    size = ARCHITECTURES[name].min_size
    model = build(name, size)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", custom_objects=custom_objects(name))
    np.testing.assert_allclose(loaded(images(size)), model(images(size)), rtol=1e-5, atol=1e-6)


def test_resolve_model_keeps_the_builtins_and_adds_the_architectures():
    assert resolve_model("resnet50") is resnet50
    assert resolve_model("ResNet50").__name__ == "ResNet50"
    assert custom_objects("ResNet50") == {}
    with pytest.raises(ValueError, match="unknown model 'ResNet5'"):
        resolve_model("ResNet5")


def test_build_application_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="did you mean 'MobileNetV2'"):
        build_application("MobileNetV2s", (32, 32, 1), NUM_CLASSES)


def plan(tiny_config: dict, image_size: int, **models: str) -> None:
    """Check runs as the Snakefile does before any job: schema defaults, then check_runs."""
    tiny_config["image_size"] = image_size
    tiny_config["runs"] = {run: {"model": model} for run, model in models.items()}
    validate(tiny_config, str(SCHEMA))
    check_runs(tiny_config, search_path=None)


def plan_error(tiny_config: dict, image_size: int, **models: str) -> str:
    with pytest.raises(ConfigError) as caught:
        plan(tiny_config, image_size, **models)
    return str(caught.value)


def test_every_architecture_passes_the_plan_time_check_at_its_minimum_size(tiny_config):
    for name, family in ARCHITECTURES.items():
        plan(tiny_config, family.min_size, run=name)


@pytest.mark.parametrize(
    ("name", "image_size", "minimum"),
    [("Xception", 64, 71), ("InceptionV3", 74, 75), ("InceptionResNetV2", 32, 75)],
)
def test_a_too_small_image_fails_at_plan_time_naming_the_key_and_the_minimum(
    tiny_config, name, image_size, minimum
):
    assert plan_error(tiny_config, image_size, small=name, big=name) == (
        f"runs.small.model: {name} needs images of at least {minimum} px; "
        f"image_size is {image_size}"
    )


@pytest.mark.parametrize(
    ("name", "closest"),
    [("ResNet5O", "ResNet50"), ("efficientnetb0", "EfficientNetB0"), ("small_cn", "small_cnn")],
)
def test_a_typo_fails_at_plan_time_suggesting_the_closest_name(tiny_config, name, closest):
    lines = plan_error(tiny_config, 64, typo=name).splitlines()
    assert lines[0] == f"runs.typo.model: unknown model {name!r}; did you mean {closest!r}?"
    assert "  MobileNetV3: MobileNetV3Small, MobileNetV3Large" in lines  # all, by family


def test_an_unsupported_keras_application_fails_at_plan_time_listing_the_supported(tiny_config):
    message = plan_error(tiny_config, 64, nas="NASNetMobile")
    assert message.startswith(
        "runs.nas.model: unknown model 'NASNetMobile' (a keras.applications architecture "
        "simtrain does not support)"
    )
    assert all(name in message for name in ARCHITECTURES)


def test_planning_still_does_not_import_keras():
    code = "import simtrain.config, sys; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    )
    assert result.stdout.split() == ["False", "False"]
