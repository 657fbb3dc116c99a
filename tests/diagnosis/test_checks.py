"""Fixes that never repeat the run's own settings, batch spikes against their sampling spread,
under-trained runs, and the validation record's file format and command-line flag."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from simtrain.diagnosis.diagnostics import diagnose
from simtrain.diagnosis.validation_record import ValidationRecord, load_validation_record

FULL = dict(train_images=2_000, validation_images=1_000, batch_size=32)


def finding(result, code):
    return next((item for item in result.findings if item.code == code), None)


def history(epochs: int, loss=None, accuracy=None, val_accuracy=None, val_loss=None):
    t = np.arange(1, epochs + 1)
    return pd.DataFrame(
        {
            "epoch": t,
            "loss": 0.2 + 1.2 * np.exp(-t / 2) if loss is None else loss,
            "accuracy": 0.95 - 0.6 * np.exp(-t / 2) if accuracy is None else accuracy,
            "val_loss": 0.4 + np.exp(-t / 2) if val_loss is None else val_loss,
            "val_accuracy": 0.85 - 0.4 * np.exp(-t / 2) if val_accuracy is None else val_accuracy,
        }
    )


def all_fixes(result) -> str:
    return " | ".join(item.fix for item in result.findings)


def test_no_fix_advises_validation_steps_null_when_it_is_already_null():
    result = diagnose(history(12), run="full", **FULL, validation_steps=None)
    assert "validation_steps: null" not in all_fixes(result)


def test_overfitting_fix_does_not_advise_augmentation_when_it_is_on():
    t = np.arange(1, 21)
    val_loss = np.where(t <= 6, 1.2 - 0.15 * t, 0.3 + 0.06 * (t - 6))
    val_accuracy = np.where(t <= 6, 0.85, 0.85 - 0.01 * (t - 6))
    frame = history(
        20, loss=0.02 + 1.2 * np.exp(-t / 4), val_loss=val_loss, val_accuracy=val_accuracy
    )
    on = finding(diagnose(frame, run="aug", **FULL, augmentation=True), "OVERFITTING")
    off = finding(diagnose(frame, run="aug", **FULL, augmentation=False), "OVERFITTING")
    assert "augmentation" not in on.fix
    assert "runs.aug.augmentation" in off.fix


def test_partial_epoch_fix_never_suggests_the_epochs_already_set():
    frame = history(10)
    result = diagnose(frame, run="p", **FULL, steps_per_epoch=60, epochs=10)
    assert finding(result, "PARTIAL_EPOCH") is not None
    assert "runs.p.epochs: 10" not in all_fixes(result)


def stable_batches(batch_size: int, seed: int = 0, epochs: int = 6) -> pd.DataFrame:
    """Batch means of per-image cross-entropies of a stable model: 90 % easy, 10 % hard images."""
    rng = np.random.default_rng(seed)
    steps = 60
    hard = rng.random((epochs * steps, batch_size)) < 0.1
    per_image = np.where(hard, rng.exponential(2.0, hard.shape), rng.exponential(0.1, hard.shape))
    step = np.arange(epochs * steps)
    trend = 1 + np.exp(-step / 80)
    return pd.DataFrame(
        {"epoch": step // steps + 1, "step": step, "loss": per_image.mean(axis=1) * trend}
    )


@pytest.mark.parametrize("seed", range(5))
def test_a_stable_model_at_batch_size_32_raises_no_unstable_optimization(seed):
    result = diagnose(history(6), run="stable", **FULL, batches=stable_batches(32, seed))
    assert finding(result, "UNSTABLE_OPTIMIZATION") is None


def test_batch_losses_spiking_again_and_again_are_unstable_optimization():
    batches = stable_batches(32)
    batches.loc[batches.index[70::25], "loss"] *= 15  # 12 spikes, in epochs 2 to 6
    result = diagnose(history(6), run="spiky", **FULL, batches=batches, learning_rate=0.01)
    unstable = finding(result, "UNSTABLE_OPTIMIZATION")
    assert unstable.severity == "warning"
    assert unstable.evidence["spikes"] >= 5 and unstable.evidence["spike_epochs"] >= 3
    assert unstable.change == {"learning_rate": 0.0033}
    # A constant rate decays first: large steps far from a minimum, small ones near it.
    constant = diagnose(
        history(6), run="spiky", **FULL, batches=batches, learning_rate=0.01, lr_schedule="none"
    )
    assert finding(constant, "UNSTABLE_OPTIMIZATION").change == {"lr_schedule": {"kind": "cosine"}}


def test_a_few_hard_batches_in_one_or_two_epochs_are_no_instability():
    batches = stable_batches(32)
    batches.loc[batches.index[[130, 140, 250]], "loss"] *= 15  # epochs 3 and 5 only
    result = diagnose(history(6), run="hard", **FULL, batches=batches, learning_rate=0.01)
    unstable = finding(result, "UNSTABLE_OPTIMIZATION")
    assert unstable.severity == "info" and unstable.evidence["spike_epochs"] == 2
    assert "STABLE" in [item.code for item in result.findings]
    batches.loc[batches.index[250], "loss"] /= 15  # epoch 3 only
    one = diagnose(history(6), run="hard", **FULL, batches=batches, learning_rate=0.01)
    assert finding(one, "UNSTABLE_OPTIMIZATION") is None


def jumping_curve(epochs: int = 15) -> pd.DataFrame:
    """A fixed 1 000-image set whose accuracy jumps 8 points up and down between epochs, as the
    runs of RMSprop at 0.003 without BatchNorm do: movement far beyond sampling and the floor."""
    t = np.arange(1, epochs + 1)
    jumps = np.where(t % 2 == 0, 0.04, -0.04) * (t > 3)
    return history(epochs, val_accuracy=0.80 - 0.4 * np.exp(-t / 2) + jumps)


@pytest.mark.parametrize("spike_epochs, cause", [(2, "UNSTABLE_OPTIMIZATION"), (1, None)])
def test_spikes_in_two_epochs_claim_a_curve_that_moves_beyond_its_noise(spike_epochs, cause):
    batches = stable_batches(32, seed=2, epochs=15)  # no spike of its own
    spiked = [250, 610][:spike_epochs]  # epochs 5 and 11
    batches.loc[batches.index[spiked], "loss"] *= 15
    result = diagnose(jumping_curve(), run="jumpy", **FULL, batches=batches, learning_rate=0.003)
    assert result.fluctuation["beyond_noise"]
    unstable = finding(result, "UNSTABLE_OPTIMIZATION")
    if cause is None:
        # One epoch's spikes are no evidence: beyond noise, cause unknown.
        assert unstable is None
        assert result.fluctuation["cause"] == "UNEXPLAINED_FLUCTUATION"
    else:
        assert result.fluctuation["cause"] == cause
        assert unstable.severity == "warning" and unstable.evidence["claims_movement"]
        assert unstable.change == {"learning_rate": 0.001}


def test_a_run_whose_training_loss_still_falls_fast_is_under_trained_and_inconclusive():
    frame = history(2, loss=np.array([1.6, 1.2]), accuracy=np.array([0.3, 0.45]))
    result = diagnose(frame, run="short", **FULL, epochs=2)
    under = finding(result, "UNDER_TRAINED")
    assert under.severity == "warning"
    assert "inconclusive" in under.explanation
    assert "runs.short.epochs: 10" in under.fix


def test_a_memorised_training_set_whose_loss_still_falls_is_not_under_trained():
    # 16 images learnt by heart: the loss keeps falling fast at full training accuracy.
    loss = np.concatenate([np.linspace(1.4, 1.0, 14), [0.8, 0.6, 0.45, 0.33, 0.24, 0.17]])
    fit = history(20, loss=loss, accuracy=np.linspace(0.4, 1.0, 20))
    assert finding(diagnose(fit, run="memorised", **FULL, epochs=20), "UNDER_TRAINED") is None
    # The same loss at 90 % training accuracy: more epochs would still change the model.
    learning = history(20, loss=loss, accuracy=np.linspace(0.4, 0.9, 20))
    under = finding(diagnose(learning, run="learning", **FULL, epochs=20), "UNDER_TRAINED")
    assert under is not None and under.severity == "warning"


def test_training_accuracy_near_chance_is_under_trained():
    frame = history(10, accuracy=np.full(10, 0.22))
    counts = {name: 400 for name in "abcde"}
    result = diagnose(frame, run="chance", **FULL, train_label_counts=counts)
    under = finding(result, "UNDER_TRAINED")
    assert under.evidence["chance"] == pytest.approx(0.2)
    assert "near chance" in under.explanation


def test_a_converged_run_is_not_under_trained():
    counts = {name: 400 for name in "abcde"}
    result = diagnose(history(20), run="done", **FULL, train_label_counts=counts)
    assert finding(result, "UNDER_TRAINED") is None


def test_validation_record_rejects_bad_shapes_dtypes_and_values():
    correct = np.array([[1, 0, -1]], dtype=np.int8)
    loss = np.array([[0.1, 2.0, np.nan]], dtype=np.float32)
    assert ValidationRecord(correct, loss).images_scored.tolist() == [2]
    with pytest.raises(ValueError, match="differ in shape"):
        ValidationRecord(correct, loss[:, :2])
    with pytest.raises(ValueError, match="int8"):
        ValidationRecord(correct.astype(float), loss)
    with pytest.raises(ValueError, match="other than 1, 0 and -1"):
        ValidationRecord(correct * 2, loss)
    with pytest.raises(ValueError, match="no finite loss"):
        ValidationRecord(correct, np.full((1, 3), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="2-D"):
        ValidationRecord(correct[0], loss[0])


def test_load_validation_record_names_the_file_and_the_missing_array(tmp_path):
    path = tmp_path / "validation_record.npz"
    np.savez(path, correct=np.ones((2, 3), dtype=np.int8))
    with pytest.raises(ValueError, match=r"validation_record\.npz.*lacks \['loss'\]"):
        load_validation_record(path)
    with pytest.raises(ValueError, match="absent.npz"):
        load_validation_record(tmp_path / "absent.npz")


def test_a_record_whose_epochs_differ_from_the_history_is_rejected():
    record = ValidationRecord(np.ones((3, 4), np.int8), np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="3 epochs but the history 5 rows"):
        diagnose(history(5), run="x", **FULL, validation_record=record)


def test_cli_reads_a_validation_record_and_finds_the_collapse(tmp_path):
    rng = np.random.default_rng(0)
    margins = rng.standard_normal(500) + np.linspace(0.5, 1.0, 10)[:, None]
    margins = margins + 0.3 * rng.standard_normal((10, 500))
    margins[6] -= 1.0  # epoch 7 collapses
    correct, loss = (margins > 0).astype(np.int8), np.logaddexp(0, -3 * margins).astype("f4")
    np.savez(tmp_path / "validation_record.npz", correct=correct, loss=loss)
    frame = history(10, val_accuracy=correct.mean(axis=1), val_loss=loss.mean(axis=1))
    frame.to_csv(tmp_path / "training.csv", index=False)
    command = [sys.executable, "-m", "simtrain.diagnose", str(tmp_path / "training.csv")]
    command += ["--train-images", "2000", "--validation-images", "500", "--batch-size", "50"]
    command += ["--validation-record", str(tmp_path / "validation_record.npz"), "--json"]
    document = json.loads(
        subprocess.run(command, capture_output=True, text=True, check=True).stdout
    )
    noise = next(f for f in document["findings"] if f["code"] == "VALIDATION_SAMPLING_NOISE")
    assert noise["evidence"]["glitch_epoch"] == 7
    assert noise["evidence"]["churn_largest"] > 0.2  # from the record
    assert document["fluctuation"]["beyond_noise"] is True
    assert document["fluctuation"]["glitch_epoch"] == 7
    help_text = subprocess.run(
        [sys.executable, "-m", "simtrain.diagnose", "--help"], capture_output=True, text=True
    ).stdout
    assert "--validation-record" in help_text and "--augmentation" in help_text
