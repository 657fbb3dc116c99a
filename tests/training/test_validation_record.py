"""Training scores validation image by image and saves it per epoch (validation_record.npz)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simtrain.training.batches import PackedBatches
from simtrain.training.fit import train_run
from simtrain.training.recorder import Recorder
from tests.packed_data import make_packed
from tests.training.test_train import spec


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return make_packed(tmp_path_factory.mktemp("data"))


def record_and_history(out_dir):
    with np.load(out_dir / "validation_record.npz") as saved:
        correct, loss = saved["correct"], saved["loss"]
    return correct, loss, pd.read_csv(out_dir / "history.tsv", sep="\t")


def test_full_validation_records_every_image_every_epoch_and_matches_the_history(packed, tmp_path):
    train_run(**spec(packed, tmp_path, epochs=2))
    correct, loss, history = record_and_history(tmp_path)
    validation_images = len(np.load(packed / "validation" / "labels.npy"))
    assert correct.shape == loss.shape == (2, validation_images)
    assert set(np.unique(correct)) <= {0, 1}
    assert np.allclose(correct.mean(axis=1), history["val_accuracy"], atol=1e-6)
    assert np.allclose(loss.mean(axis=1), history["val_loss"], rtol=1e-5)
    # The last epoch's model is the final model: its record equals predictions.tsv.
    predictions = pd.read_csv(tmp_path / "predictions.tsv", sep="\t")
    final = (predictions["true"] == predictions["predicted"]).to_numpy()
    assert np.array_equal(correct[-1].astype(bool), final)


def served_validation_images(monkeypatch, packed) -> dict[int, set[int]]:
    """Per epoch, the validation images PackedBatches handed to the model while the recorder
    validated (row numbers of the packed validation images, found by content)."""
    validation = np.load(packed / "validation" / "images.npy")
    row_of = {image.tobytes(): i for i, image in enumerate(validation)}
    assert len(row_of) == len(validation), "the tiny validation images are not all distinct"
    served: dict[int, set[int]] = {}
    epoch = [None]
    original_validate, original_getitem = Recorder.validate, PackedBatches.__getitem__

    def validate(self, epoch_index, logs):
        epoch[0] = epoch_index
        try:
            return original_validate(self, epoch_index, logs)
        finally:
            epoch[0] = None

    def getitem(self, step):
        images, targets = original_getitem(self, step)
        if epoch[0] is not None and len(self.split) == len(validation):
            rows = {row_of[image.tobytes()] for image in np.asarray(images)}
            served.setdefault(epoch[0], set()).update(rows)
        return images, targets

    monkeypatch.setattr(Recorder, "validate", validate)
    monkeypatch.setattr(PackedBatches, "__getitem__", getitem)
    return served


def test_shuffled_partial_validation_records_a_different_sample_each_epoch(
    packed, tmp_path, monkeypatch
):
    served = served_validation_images(monkeypatch, packed)
    train_run(
        **spec(
            packed, tmp_path, epochs=3, validation_steps=1, validation_shuffle=True, batch_size=4
        )
    )
    correct, loss, history = record_and_history(tmp_path)
    scored = correct >= 0
    assert scored.sum(axis=1).tolist() == [4, 4, 4]
    assert np.array_equal(scored, np.isfinite(loss))
    assert len({tuple(np.flatnonzero(row)) for row in scored}) > 1
    # The record names the images the model was really shown, not the sampler's formula.
    assert sorted(served) == [0, 1, 2]
    for epoch in range(3):
        assert set(np.flatnonzero(scored[epoch])) == served[epoch], epoch
    accuracy = [correct[e][scored[e]].mean() for e in range(3)]
    assert np.allclose(accuracy, history["val_accuracy"], atol=1e-6)


def test_predictions_reused_from_the_last_epoch_equal_a_fresh_prediction_of_the_final_model(
    packed, tmp_path
):
    import keras

    from simtrain.data.arrays import PackedSplit
    from simtrain.training.batches import PackedBatches

    train_run(**spec(packed, tmp_path, epochs=2))
    validation = PackedSplit.load(packed / "validation")
    model = keras.models.load_model(tmp_path / "model.keras")
    fresh = model.predict(PackedBatches(validation, 8, shuffle=False), verbose=0)
    saved = pd.read_csv(tmp_path / "predictions.tsv", sep="\t")
    probabilities = saved[[c for c in saved.columns if c.startswith("p_")]].to_numpy()
    assert np.allclose(probabilities, fresh, rtol=1e-6, atol=1e-7)
