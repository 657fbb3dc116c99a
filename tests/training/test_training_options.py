"""Each training option changes training as it claims, under both backends, and a run that
uses them, killed and resumed, equals the uninterrupted one byte for byte."""

from __future__ import annotations

import inspect
import json
import math
import signal
from dataclasses import asdict

import keras
import numpy as np
import pytest

from simtrain.common.failpoints import ENVIRONMENT_VARIABLE as FAILPOINT_VARIABLE
from simtrain.common.modules import imports_in
from simtrain.training.fit import RunSettings
from simtrain.training.model_params import BUILTIN_MODEL_PARAMETERS
from simtrain.training.models import build_model, make_optimizer, resolve_model
from simtrain.training.optimization import batchnorm_layers, compile_model
from simtrain.training.options import DEFAULTS, training_options
from simtrain.training.schedules import learning_rate_schedule
from tests.conftest import ROOT
from tests.packed_data import make_packed
from tests.training.test_train import (
    SETTINGS,
    assert_same_run,
    read,
    resumed_and_trained,
    run_in_process,
)

LEARNING_RATE = SETTINGS["learning_rate"]  # 0.002
STEPS = 5  # 36 training images in batches of 8


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return make_packed(tmp_path_factory.mktemp("data"))


def schedule_rates(epochs: int, **options) -> list[float]:
    options = training_options({"epochs": epochs, "learning_rate": LEARNING_RATE, **options})
    schedule = learning_rate_schedule(options, LEARNING_RATE, steps_per_epoch=STEPS, epochs=epochs)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    rates = [float(keras.ops.convert_to_numpy(schedule(step))) for step in range(epochs * STEPS)]
    assert rates == [float(keras.ops.convert_to_numpy(restored(s))) for s in range(epochs * STEPS)]
    return rates


def cosine(step: int, total: int, alpha: float) -> float:
    return LEARNING_RATE * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * step / total)))


def test_cosine_rises_linearly_over_the_warm_up_then_follows_the_cosine_to_alpha():
    rates = schedule_rates(4, lr_schedule={"kind": "cosine", "alpha": 0.1}, warmup_epochs=1)
    warmup = [LEARNING_RATE * s / STEPS for s in range(STEPS)]
    decay = [cosine(s, 3 * STEPS, 0.1) for s in range(3 * STEPS)]
    assert rates == pytest.approx(warmup + decay, rel=1e-6)


def test_a_step_schedule_drops_at_the_first_step_of_every_every_epochs_epoch_after_warm_up():
    rates = schedule_rates(
        5, lr_schedule={"kind": "step", "drop": 0.5, "every_epochs": 2}, warmup_epochs=1
    )
    warmup = [LEARNING_RATE * s / STEPS for s in range(STEPS)]
    after = [LEARNING_RATE * 0.5 ** (s // (2 * STEPS)) for s in range(4 * STEPS)]
    assert rates == pytest.approx(warmup + after, rel=1e-6)


def test_a_warm_up_alone_reaches_the_constant_rate():
    rates = schedule_rates(3, warmup_epochs=2)
    warmup = [LEARNING_RATE * s / (2 * STEPS) for s in range(2 * STEPS)]
    assert rates == pytest.approx(warmup + [LEARNING_RATE] * STEPS, rel=1e-6)
    assert training_options({"epochs": 3, "learning_rate": LEARNING_RATE}).lr_schedule is None


def test_weight_decay_is_decoupled_for_every_optimizer_and_adamw_keeps_its_own_default():
    for name in ("adam", "sgd", "rmsprop", "adamw"):
        weight = keras.Variable(np.ones(3, dtype="float32"))
        optimizer = make_optimizer(name, 0.1, weight_decay=0.5)
        optimizer.apply([keras.ops.zeros(3)], [weight])  # no gradient: only the decay acts
        assert np.allclose(keras.ops.convert_to_numpy(weight), 1 - 0.1 * 0.5), name
    assert make_optimizer("adamw", 0.1).weight_decay == pytest.approx(0.004)
    assert make_optimizer("adam", 0.1).weight_decay is None


@pytest.mark.parametrize("model", ["small_cnn", "MobileNetV3Small"])
def test_batchnorm_momentum_is_set_on_every_batchnorm_layer_nested_ones_included(model):
    built = build_model(
        model, image_size=32, num_classes=3, augmentation={}, standardize=True, seed=0
    )
    layers = batchnorm_layers(built)
    assert layers and {layer.momentum for layer in layers} != {0.5}
    options = training_options({"epochs": 2, "learning_rate": 0.001, "batchnorm_momentum": 0.5})
    compile_model(built, "adam", 0.001, options)
    assert {layer.momentum for layer in batchnorm_layers(built)} == {0.5}


PLUGIN = """
import keras

def dense(input_shape, num_classes, units=4):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(units, name="hidden")(keras.layers.Flatten()(inputs))
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="dense")

alias = dense
"""


def test_model_params_reach_the_plugin_the_small_cnn_and_keras_applications(tmp_path):
    (tmp_path / "optplugin.py").write_text(PLUGIN)

    def build(model, **params):
        built = build_model(
            model,
            image_size=32,
            num_classes=3,
            augmentation={},
            standardize=True,
            seed=0,
            search_path=tmp_path,
            model_params=params,
        )
        return built.layers[-1]  # the classifier

    assert build("optplugin:dense", units=7).get_layer("hidden").units == 7
    cnn = build("small_cnn", filters=[8, 12], dropout=0.3)
    assert [layer.filters for layer in cnn.layers if hasattr(layer, "filters")] == [8, 12]
    assert [layer.rate for layer in cnn.layers if isinstance(layer, keras.layers.Dropout)] == [0.3]
    narrow, wide = build("MobileNetV3Small", alpha=0.75), build("MobileNetV3Small")
    assert narrow.count_params() < wide.count_params()
    # Where the plan could not read the signature (an alias), the job names the key.
    with pytest.raises(ValueError, match="model_params.unit: dense takes no parameter 'unit'"):
        build("optplugin:alias", unit=7)


def test_the_builtin_models_parameters_table_matches_their_signatures():
    for name, parameters in BUILTIN_MODEL_PARAMETERS.items():
        signature = list(inspect.signature(resolve_model(name)).parameters)
        assert tuple(signature[2:]) == parameters, name


def test_run_settings_without_the_options_take_their_defaults():
    settings = asdict(RunSettings.from_mapping(SETTINGS))
    assert {name: settings[name] for name in DEFAULTS} == DEFAULTS


def rates(out_dir) -> list[float]:
    return read(out_dir, "history.tsv")["learning_rate"].tolist()


def metrics(out_dir) -> dict:
    return json.loads((out_dir / "metrics.json").read_text())


# Early stopping and ReduceLROnPlateau that never see an improvement after the first epoch
# (min_delta above any change), so they act at known epochs whatever the data: early stopping
# waits through epochs 2 and 3 and stops after epoch 3 of 4, restoring epoch 1's weights; the
# plateau halves the rate after epochs 2 and 3 (patience 1, counted afresh after a reduction).
OPTIONS = {
    "epochs": 4,
    "lr_schedule": {"kind": "reduce_on_plateau", "factor": 0.5, "patience": 1, "min_delta": 10.0},
    "early_stopping": {"patience": 2, "min_delta": 10.0, "restore_best_weights": True},
    "checkpoint_monitor": "val_accuracy",
    "label_smoothing": 0.2,
    "weight_decay": 0.05,
    "batchnorm_momentum": 0.5,
}
# The same with a per-step schedule instead: one warm-up epoch, then halved every epoch.
SCHEDULED = OPTIONS | {
    "lr_schedule": {"kind": "step", "drop": 0.5, "every_epochs": 1},
    "warmup_epochs": 1,
}


@pytest.fixture(scope="module")
def with_options(packed, tmp_path_factory):
    """An uninterrupted run with OPTIONS, in its own process."""
    out = tmp_path_factory.mktemp("options") / "run"
    assert resumed_and_trained(run_in_process(packed, out, **OPTIONS)) == (0, [1, 2, 3])
    return out


@pytest.fixture(scope="module")
def scheduled_under_jax(packed, tmp_path_factory):
    """A run with SCHEDULED under the JAX backend, in its own process."""
    out = tmp_path_factory.mktemp("jax") / "run"
    result = run_in_process(packed, out, backend="jax", **SCHEDULED)
    assert "backend jax" in result.stderr
    assert resumed_and_trained(result) == (0, [1, 2, 3])
    return out


def test_reduce_on_plateau_halves_the_logged_rate_after_each_plateau(with_options):
    assert rates(with_options) == pytest.approx(
        [LEARNING_RATE, LEARNING_RATE, LEARNING_RATE / 2], rel=1e-6
    )


def test_history_shows_the_rate_of_each_epochs_last_step_under_a_schedule_under_jax(
    scheduled_under_jax,
):
    assert rates(scheduled_under_jax) == pytest.approx(
        [LEARNING_RATE * 4 / 5, LEARNING_RATE, LEARNING_RATE / 2], rel=1e-6
    )


def validation_probabilities(model_path, packed) -> tuple[np.ndarray, np.ndarray]:
    model = keras.models.load_model(model_path)
    labels = np.load(packed / "validation/labels.npy")
    images = np.load(packed / "validation/images.npy")
    return model.predict(images, batch_size=8, verbose=0), labels


def plain_cross_entropy(probabilities, labels) -> np.ndarray:
    return -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1))


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_early_stopping_stops_at_its_epoch_and_restores_the_best_weights(request, packed, backend):
    run = request.getfixturevalue(
        "with_options" if backend == "tensorflow" else "scheduled_under_jax"
    )
    history = read(run, "history.tsv")
    assert history["epoch"].tolist() == [1, 2, 3]
    summary = metrics(run)
    assert (summary["epochs"], summary["epochs_run"], summary["stopped_by"]) == (
        4,
        3,
        "early_stopping",
    )
    assert summary["early_stopping"] | {"best": None} == {
        "monitor": "val_loss",
        "stopped_epoch": 3,
        "best_epoch": 1,
        "best": None,
        "restored_best_weights": True,
    }
    # model.keras and predictions.tsv are epoch 1's model: it scores epoch 1's val_loss.
    predictions = read(run, "predictions.tsv")
    assert predictions["loss"].mean() == pytest.approx(history["val_loss"][0], abs=1e-6)
    assert history["val_loss"][0] != pytest.approx(history["val_loss"][2], abs=1e-4)
    probabilities, labels = validation_probabilities(run / "model.keras", packed)
    assert plain_cross_entropy(probabilities, labels).mean() == pytest.approx(
        history["val_loss"][0], abs=1e-5
    )


def test_checkpoint_monitor_val_accuracy_keeps_the_first_most_accurate_epoch(with_options, packed):
    history = read(with_options, "history.tsv")
    best = int(history["val_accuracy"].idxmax())
    # Not the epoch val_loss would have kept, or the test could not tell the monitors apart.
    assert best != history["val_loss"].idxmin()
    summary = metrics(with_options)
    assert (summary["checkpoint_monitor"], summary["best_epoch"]) == ("val_accuracy", best + 1)
    probabilities, labels = validation_probabilities(with_options / "best.keras", packed)
    assert (probabilities.argmax(axis=1) == labels).mean() == pytest.approx(
        history["val_accuracy"][best], abs=1e-6
    )
    assert plain_cross_entropy(probabilities, labels).mean() == pytest.approx(
        history["val_loss"][best], abs=1e-6
    )


def test_label_smoothing_trains_on_smoothed_targets_while_val_loss_stays_plain(
    with_options, packed
):
    model = keras.models.load_model(with_options / "model.keras")
    probabilities, labels = validation_probabilities(with_options / "model.keras", packed)
    targets = np.eye(3, dtype="float32")[labels]
    smoothed = targets * 0.8 + 0.2 / 3
    expected = -(smoothed * np.log(np.clip(probabilities, 1e-7, 1))).sum(axis=1).mean()
    loss = float(keras.ops.convert_to_numpy(model.loss(targets, probabilities)))
    assert loss == pytest.approx(expected, rel=1e-4)
    plain = plain_cross_entropy(probabilities, labels).mean()
    assert abs(loss - plain) > 1e-3  # the smoothed loss is another number than val_loss
    assert read(with_options, "history.tsv")["val_loss"][0] == pytest.approx(plain, abs=1e-6)


def test_the_trained_model_keeps_its_weight_decay_batchnorm_momentum_and_schedule(
    with_options, scheduled_under_jax
):
    for run in (with_options, scheduled_under_jax):
        model = keras.models.load_model(run / "model.keras")
        assert model.optimizer.weight_decay == pytest.approx(0.05)
        assert {layer.momentum for layer in batchnorm_layers(model)} == {0.5}
    assert metrics(scheduled_under_jax)["training_options"]["warmup_epochs"] == 1
    # The warm-up schedule is saved with the optimizer, and loads wherever simtrain's layers
    # are registered: every module that loads a model imports simtrain.training.layers.
    assert type(model.optimizer._learning_rate).__name__ == "LinearWarmup"
    layers_imports = imports_in(ROOT / "src/simtrain/training/layers.py")
    assert "simtrain.training.schedules" in layers_imports


def test_a_run_with_options_killed_mid_epoch_resumes_to_the_uninterrupted_run(
    packed, tmp_path, with_options
):
    """Killed in epoch 3: the resumed run must still stop after epoch 3 with epoch 1's weights
    (early stopping's counter and best weights) and halve the rate after epoch 3 again
    (ReduceLROnPlateau's best value and the rate it lowered after epoch 2)."""
    resumed = tmp_path / "resumed"
    killed = run_in_process(packed, resumed, check=False, job={"kill_at": [3, 1]}, **OPTIONS)
    assert killed.returncode == -signal.SIGKILL
    second = run_in_process(packed, resumed, **OPTIONS)
    assert resumed_and_trained(second) == (2, [3])
    assert_same_run(resumed, with_options)
    assert metrics(resumed)["early_stopping"] == metrics(with_options)["early_stopping"]


def test_a_run_early_stopping_ended_trains_no_more_when_resumed(packed, tmp_path, with_options):
    resumed = tmp_path / "resumed"
    killed = run_in_process(
        packed, resumed, check=False, env={FAILPOINT_VARIABLE: "train.writing_outputs"}, **OPTIONS
    )
    assert killed.returncode == -signal.SIGKILL
    assert resumed_and_trained(run_in_process(packed, resumed, **OPTIONS)) == (3, [])
    assert_same_run(resumed, with_options)
