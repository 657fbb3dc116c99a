"""The diagnostics on a history written by a plain `model.fit` with Keras' CSVLogger."""

import json
import subprocess
import sys

import keras
import numpy as np


def test_cli_diagnoses_a_real_csvlogger_file_from_a_partial_epoch_fit(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 256), 3)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    log = tmp_path / "training.csv"
    # The original mistake in miniature: 2 of 8 batches per epoch.
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=4,
        steps_per_epoch=2,
        validation_data=(x[:64], y[:64]),
        callbacks=[keras.callbacks.CSVLogger(str(log))],
        verbose=0,
    )
    assert log.read_text().startswith("epoch,")

    command = [
        sys.executable,
        "-m",
        "simtrain.diagnose",
        str(log),
        "--train-images",
        "256",
        "--validation-images",
        "64",
        "--batch-size",
        "32",
        "--steps-per-epoch",
        "2",
    ]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "PARTIAL_EPOCH" in text
    result = json.loads(
        subprocess.run([*command, "--json"], capture_output=True, text=True, check=True).stdout
    )
    partial = next(f for f in result["findings"] if f["code"] == "PARTIAL_EPOCH")
    assert partial["evidence"]["fraction_per_epoch"] == 0.25
    # A plain Keras run: the fix names the Keras argument, not a workflow config key.
    assert partial["fix"].startswith("set model.fit's steps_per_epoch: null")
    assert "runs." not in json.dumps(result)
