"""Model evidence on real trained models: precise BatchNorm statistics, per-epoch evidence,
and the augmentation shift of a bilinear warp."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from simtrain.data.arrays import PackedSplit
from simtrain.data.pipeline import build_packed_dataset
from simtrain.diagnosis.batchnorm import check_augmentation_shift, check_batchnorm
from simtrain.diagnosis.findings import RunSettings
from simtrain.diagnosis.model_evidence import batchnorm_evidence, epoch_evidence
from simtrain.training import precise_bn
from simtrain.training.batches import PackedBatches
from simtrain.training.epoch_weights import epoch_weights_path
from simtrain.training.fit import train_run
from simtrain.training.models import build_model, classifier_inputs
from simtrain.training.precise_bn import (
    batchnorm_layers,
    collect_batch_statistics,
    read_statistics,
    recompute_statistics,
)

# Strong pixel noise: a bilinear warp smooths it in training images only.
NOISY = {
    "blobs": ("blobs", {"noise": 0.35, "contrast": 0.6}),
    "grating": ("grating", {"noise": 0.35, "contrast": 0.4}),
    "rings": ("rings", {"noise": 0.35, "contrast": 0.6}),
}
SETTINGS = {
    "model": "small_cnn",
    "epochs": 6,
    "batch_size": 16,
    "optimizer": "adam",
    "learning_rate": 0.003,
    "steps_per_epoch": None,
    "validation_steps": None,
    "validation_shuffle": False,
    "augmentation": {
        "shear": 0.2,
        "zoom": 0.3,
        "horizontal_flip": True,
        "interpolation": "bilinear",
    },
    "standardize": True,
    "train_images": None,
    "seed": 1,
}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("noisy")
    return build_packed_dataset(root, NOISY, per_class=48, size=48, seed=2)


@pytest.fixture(scope="module")
def bilinear_run(packed, tmp_path_factory):
    out = tmp_path_factory.mktemp("bilinear")
    train_run(
        run="bilinear",
        settings=SETTINGS,
        train_dir=packed / "train",
        validation_dir=packed / "validation",
        out_dir=out,
        resolved_config={},
        threads=2,
    )
    return out


def settings_of(**overrides) -> RunSettings:
    values = dict(run="r", train_images=108, validation_images=36, batch_size=16, epochs=6)
    values |= dict(steps_per_epoch=None, validation_steps=None, validation_shuffle=False)
    values |= dict(augmentation=True)
    return RunSettings.checked(**values | overrides)


def untrained(packed) -> keras.Model:
    return build_model(
        "small_cnn", image_size=48, num_classes=3, augmentation={}, standardize=True, seed=0
    )


def test_recompute_statistics_replaces_the_moving_statistics_by_the_batch_average(packed):
    model = untrained(packed)
    layers = batchnorm_layers(model)
    before = read_statistics(layers)
    train = PackedBatches(PackedSplit.load(packed / "train"), 16, shuffle=True, seed=0)
    statistics = collect_batch_statistics(model, train, augment=False)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(before, read_statistics(layers)))
    recompute_statistics(model, train, augment=False)
    after = read_statistics(layers)
    mean, variance = statistics.averaged()[0]
    np.testing.assert_allclose(after[0][0], mean, rtol=1e-5)
    np.testing.assert_allclose(after[0][1], variance, rtol=1e-5)
    assert not np.allclose(after[0][0], before[0][0])  # an untrained layer starts at 0, 1


def test_batch_statistics_are_each_batchs_own_moments_in_training_mode(packed, monkeypatch):
    model = untrained(packed)
    layers = batchnorm_layers(model)
    train = PackedBatches(PackedSplit.load(packed / "train"), 16, shuffle=True, seed=0)
    monkeypatch.setattr(precise_bn, "COMPILE_FROM_BATCHES", 1)  # the compiled pass
    statistics = collect_batch_statistics(model, train, augment=False)
    assert precise_bn._compiled[model][False] is not None
    assert statistics.batches == len(train)
    # The first BN layer's input precedes every BN layer: computed directly, batch by batch.
    classifier = model.layers[-1]
    first = keras.Model(classifier.inputs, layers[0].input)
    for k in range(len(train)):
        images, _ = train[k]
        feature = keras.ops.convert_to_numpy(first(classifier_inputs(model, images, augment=False)))
        np.testing.assert_allclose(statistics.means[0][k], feature.mean((0, 1, 2)), atol=1e-5)
        np.testing.assert_allclose(statistics.variances[0][k], feature.var((0, 1, 2)), rtol=1e-4)
    # Every layer: the same as one eager training-mode call per batch (the path for passes
    # under COMPILE_FROM_BATCHES and for classifiers that are not one functional graph).
    means, variances = precise_bn._eager_moments(model, layers, train, len(train), False)
    for compiled, eager in zip(statistics.means + statistics.variances, means + variances):
        np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-6)


def test_population_statistics_add_the_spread_between_batches(packed):
    model = untrained(packed)
    train = PackedBatches(PackedSplit.load(packed / "train"), 2, shuffle=True, seed=0)
    statistics = collect_batch_statistics(model, train, augment=False)
    (_, within), (_, population) = statistics.averaged()[0], statistics.averaged(population=True)[0]
    assert (population > within).all()  # batches of 2 see less of the spread
    spread = np.var(statistics.means[0], axis=0)
    np.testing.assert_allclose(population - within, spread, rtol=1e-5)


@pytest.fixture(scope="module")
def bilinear_evidence(packed, bilinear_run) -> dict:
    """The trained bilinear-warp model's BatchNorm evidence (read only)."""
    return batchnorm_evidence(
        bilinear_run / "model.keras",
        packed / "train",
        packed / "validation",
        batch_size=16,
        seed=1,
    )


def test_a_trained_bilinear_warp_yields_augmentation_shift_with_the_interpolation_fix(
    bilinear_evidence,
):
    assert bilinear_evidence["interpolation"] == "bilinear"
    assert bilinear_evidence["shift_gap"] >= 0.05
    # The recomputation's own spread (a bootstrap over its batches) is part of the error.
    for name in ("lag", "shift", "population"):
        assert 0 <= bilinear_evidence[f"{name}_bootstrap_sd"] <= bilinear_evidence[f"{name}_se"]
    shift = check_augmentation_shift(bilinear_evidence, settings_of())
    assert shift is not None and shift.severity == "warning"
    assert shift.change == {"augmentation": {"interpolation": "nearest"}}


def test_population_statistics_are_of_the_augmented_inputs_so_the_shift_stays_apart(
    bilinear_evidence,
):
    """1 vs 4 (stored vs population statistics) must differ by batch size alone: population
    statistics of un-augmented inputs would add the whole augmentation shift to it, and a
    bilinear warp would read as a small-batch BatchNorm mismatch."""
    assert bilinear_evidence["shift_gap"] >= 0.05
    assert (
        bilinear_evidence["population_gap"]
        < bilinear_evidence["lag_gap"] + bilinear_evidence["shift_gap"] / 2
    )


def test_the_same_evidence_without_its_gap_is_no_finding(bilinear_evidence):
    calm = bilinear_evidence | {
        "shift_gap": 0.02,
        "lag_gap": 0.0,
        "lag_p": 0.5,
        "population_p": 0.5,
    }
    assert check_augmentation_shift(calm, settings_of()) is None
    assert check_batchnorm(calm, settings_of()).severity == "info"


def test_kept_epoch_weights_reproduce_each_epochs_validation(packed, bilinear_run):
    epochs = [1, 3, 6]
    assert all(epoch_weights_path(bilinear_run, e).exists() for e in range(1, 7))
    per_epoch = epoch_evidence(
        bilinear_run / "model.keras",
        bilinear_run,
        packed / "train",
        packed / "validation",
        epochs=epochs,
        batch_size=16,
        seed=1,
    )
    history = pd.read_csv(bilinear_run / "history.tsv", sep="\t")
    recorded = history.set_index("epoch")["val_accuracy"].loc[epochs].to_numpy()
    np.testing.assert_allclose(per_epoch["stored"], recorded, atol=1e-6)
    assert len(per_epoch["precise_bn"]) == 3
    assert (
        epoch_evidence(
            bilinear_run / "model.keras",
            bilinear_run,
            packed / "train",
            packed / "validation",
            epochs=[7],
            batch_size=16,
            seed=1,
        )
        is None
    )  # no weights kept for that epoch
