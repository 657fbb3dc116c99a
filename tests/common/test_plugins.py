"""One plug-in resolver for simulators and models; a plug-in model's backup reloads."""

from __future__ import annotations

import sys
import uuid

import keras
import numpy as np
import pytest

from simtrain.common.plugins import PluginError, plugin_source_file, resolve_plugin
from simtrain.training.models import build_model, custom_objects

MODULE = """
import keras

class Doubler(keras.layers.Layer):  # deliberately not registered with Keras
    def call(self, x):
        return 2 * x

def tiny(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.GlobalAveragePooling2D()(Doubler()(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
"""


@pytest.fixture
def plugin(tmp_path):
    name = f"models_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    yield name
    sys.modules.pop(name, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_a_plugin_resolves_and_its_source_file_is_found(plugin, tmp_path):
    assert callable(resolve_plugin(f"{plugin}:tiny", "model", tmp_path))
    assert plugin_source_file(f"{plugin}:tiny", "model", tmp_path) == str(tmp_path / f"{plugin}.py")


@pytest.mark.parametrize("spec", ["mod:", ":f", "a:b:c", "my-mod:f"])
def test_a_malformed_spec_names_the_kind(spec):
    with pytest.raises(PluginError, match=f"malformed model '{spec}'"):
        resolve_plugin(spec, "model")


def test_a_missing_function_names_module_and_attribute(plugin, tmp_path):
    with pytest.raises(PluginError, match=f"module '{plugin}'.*has no attribute 'nope'"):
        resolve_plugin(f"{plugin}:nope", "model", tmp_path)


def test_a_plugin_models_backup_loads_with_its_custom_objects(plugin, tmp_path):
    name = f"{plugin}:tiny"
    model = build_model(
        name,
        image_size=8,
        num_classes=2,
        augmentation={},
        standardize=True,
        seed=0,
        search_path=tmp_path,
    )
    model.save(tmp_path / "backup.keras")
    objects = custom_objects(name, tmp_path)
    assert list(objects) == ["Doubler"]
    images = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 1), dtype=np.uint8)
    loaded = keras.models.load_model(tmp_path / "backup.keras", custom_objects=objects)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    with pytest.raises(TypeError, match="Doubler"):
        keras.models.load_model(tmp_path / "backup.keras")


def test_builtin_models_need_no_custom_objects():
    assert custom_objects("small_cnn") == {}
