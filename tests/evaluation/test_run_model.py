"""A run's saved model applied to memory-mapped images: batches, choices, and mismatches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simtrain.evaluation.run_model import MODEL_FILES, load_run_model, model_file
from simtrain.training.models import build_model


def test_model_choices_name_their_files_and_the_baseline_has_one(tmp_path):
    assert model_file(tmp_path, "precise_bn", "small_cnn") == tmp_path / "precise_bn.keras"
    assert model_file(tmp_path, "best", "resnet50") == tmp_path / "best.keras"
    assert model_file(tmp_path, "final", "baseline") == tmp_path / "model.joblib"
    with pytest.raises(ValueError, match="the baseline has one fitted model"):
        model_file(tmp_path, "best", "baseline")
    with pytest.raises(ValueError, match="expected one of final, best, precise_bn"):
        model_file(tmp_path, "last", "small_cnn")
    assert list(MODEL_FILES) == ["final", "best", "precise_bn"]


def test_a_16_bit_model_predicts_memory_mapped_images_batch_by_batch(tmp_path):
    model = build_model(
        "small_cnn",
        image_size=32,
        num_classes=3,
        augmentation={},
        standardize=True,
        seed=0,
        pixel_dtype="uint16",
    )
    model.save(tmp_path / "best.keras")
    metrics = {"model": "small_cnn", "classes": ["a", "b", "c"]}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    images = np.random.default_rng(0).integers(0, 65536, (10, 32, 32, 1), dtype=np.uint16)
    np.save(tmp_path / "images.npy", images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")

    loaded = load_run_model(tmp_path, "best")
    assert loaded.input_dtype == "uint16" and loaded.image_size == 32
    batched = loaded.probabilities(mapped, batch_size=3)
    np.testing.assert_allclose(batched, model.predict(images, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match=r"uint8 images, but the model .* takes uint16"):
        loaded.probabilities(images.astype(np.uint8))
    with pytest.raises(ValueError, match="takes 32x32"):
        loaded.probabilities(images[:, :16, :16])
    with pytest.raises(ValueError, match=r"model.keras: missing; the run has no 'final' model"):
        load_run_model(tmp_path, "final")
