"""Tests for simtrain.diagnosis.diagnostics: one synthetic run with a known property per finding."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from simtrain.diagnosis.cli import main
from simtrain.diagnosis.diagnostics import diagnose
from simtrain.diagnosis.history import read_history

# The original question: 40 000 images split 80/20, batch 128, 31 steps, 9 validation steps.
ORIGINAL = dict(
    train_images=32_000,
    validation_images=8_000,
    batch_size=128,
    steps_per_epoch=31,
    validation_steps=9,
    validation_shuffle=True,
)
FULL = dict(train_images=2_000, validation_images=1_000, batch_size=50)


def history_frame(val_loss, val_accuracy, loss=None) -> pd.DataFrame:
    epochs = len(val_loss)
    # A converged run: training loss levels off (a still-falling one is UNDER_TRAINED).
    converged = 0.2 + 0.8 * np.exp(-np.arange(epochs) / max(epochs / 6, 0.5))
    loss = converged if loss is None else np.asarray(loss)
    return pd.DataFrame(
        {
            "epoch": np.arange(1, epochs + 1),
            "loss": loss,
            "accuracy": np.linspace(0.5, 0.95, epochs),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
    )


def predictions_frame(images: int = 1_000, seed: int = 0) -> pd.DataFrame:
    """Final-model predictions on a balanced 4-class validation set, 90 % right."""
    rng = np.random.default_rng(seed)
    classes = np.array(["blobs", "rings", "streaks", "grating"])
    true = classes[np.arange(images) % 4]
    wrong = rng.random(images) < 0.1
    predicted = np.where(wrong, classes[(np.arange(images) + 1) % 4], true)
    loss = np.where(wrong, rng.exponential(2.0, images), rng.exponential(0.1, images))
    return pd.DataFrame(
        {"index": np.arange(images), "true": true, "predicted": predicted, "loss": loss}
    )


def sampled_history(epochs: int, noise_factor: float, seed: int = 1) -> pd.DataFrame:
    """Curves that move by `noise_factor` times the sampling noise of 1 000 validation images."""
    rng = np.random.default_rng(seed)
    loss_sd = predictions_frame()["loss"].std(ddof=1) / np.sqrt(1_000)
    accuracy_sd = np.sqrt(0.9 * 0.1 / 1_000)
    trend = 0.3 + 0.5 * np.exp(-np.arange(epochs) / 2)
    val_loss = trend + noise_factor * loss_sd * rng.standard_normal(epochs)
    val_accuracy = 0.9 + noise_factor * accuracy_sd * rng.standard_normal(epochs)
    return history_frame(val_loss, val_accuracy)


def codes(result) -> list[str]:
    return [finding.code for finding in result.findings]


def finding(result, code):
    return next(item for item in result.findings if item.code == code)


def test_original_case_reports_partial_epoch_and_partial_validation_fractions():
    result = diagnose(sampled_history(20, 1.0), run="original", **ORIGINAL)
    epoch, validation = finding(result, "PARTIAL_EPOCH"), finding(result, "PARTIAL_VALIDATION")
    assert epoch.evidence["fraction_per_epoch"] == pytest.approx(0.124, abs=1e-3)
    assert epoch.evidence["epochs_to_see_every_image"] == 9
    assert epoch.severity == "critical"
    assert "runs.original.steps_per_epoch: null" in epoch.fix
    assert validation.evidence["fraction_per_epoch"] == pytest.approx(0.144, abs=1e-3)
    assert "DIFFERENT random part" in validation.explanation
    assert "runs.original.validation_steps: null" in validation.fix


def test_full_coverage_yields_no_partial_findings():
    result = diagnose(
        sampled_history(20, 1.0), run="full", **FULL, steps_per_epoch=40, validation_steps=20
    )
    assert not {"PARTIAL_EPOCH", "PARTIAL_VALIDATION"} & set(codes(result))


def test_stable_curve_within_its_noise_band_raises_no_warning_and_is_stable():
    result = diagnose(sampled_history(20, 0.7), run="calm", **FULL, predictions=predictions_frame())
    assert all(item.severity == "info" for item in result.findings)
    assert codes(result)[-1] == "STABLE"
    assert finding(result, "VALIDATION_SAMPLING_NOISE").severity == "info"
    # One metric drives the verdict: val_accuracy, whose standard error needs no model.
    assert result.fluctuation_metric == "val_accuracy"
    assert result.fluctuation_score < 2


def test_fluctuation_score_is_near_one_when_validation_images_are_resampled_each_epoch():
    rng = np.random.default_rng(3)
    per_image = predictions_frame()["loss"].to_numpy()
    draws = rng.integers(0, per_image.size, size=(40, 1_000))
    val_loss = 0.3 + per_image[draws].mean(axis=1) - per_image.mean()
    val_accuracy = rng.binomial(1_000, 0.9, 40) / 1_000
    result = diagnose(
        history_frame(val_loss, val_accuracy),
        run="resampled",
        **FULL,
        predictions=predictions_frame(),
    )
    assert 0.6 < result.fluctuation_score < 1.5


def test_fluctuation_far_beyond_the_floor_is_a_warning_with_a_high_score():
    # Eight binomial standard errors of 1 000 images: ~7.6 points an epoch, beyond the floor.
    result = diagnose(
        sampled_history(20, 8.0), run="jumpy", **FULL, predictions=predictions_frame()
    )
    assert result.fluctuation["beyond_noise"] is True
    assert finding(result, "UNEXPLAINED_FLUCTUATION").severity == "warning"
    assert result.fluctuation_score > 1.8
    assert "STABLE" not in codes(result)


def test_without_per_image_losses_val_loss_has_no_standard_error_and_says_so():
    result = diagnose(sampled_history(20, 1.0), run="cli", **FULL)
    assert result.fluctuation_metric == "val_accuracy"
    noise = finding(result, "VALIDATION_SAMPLING_NOISE")
    assert noise.evidence["val_accuracy_standard_error"] == 0  # a fixed set: no sampling
    assert 0 < noise.evidence["val_accuracy_expected_noise"] <= 0.03  # ordinary movement
    assert noise.evidence["val_loss_standard_error"] is None
    assert any("val_loss standard error" in skip.reason for skip in result.skipped)


def batchnorm_evidence(moving: float, recomputed: float, lag_p: float, **extra) -> dict:
    """Model evidence as model_evidence.batchnorm_evidence writes it."""
    return {
        "val_loss_moving": 1.0,
        "val_loss_recomputed": 0.5,
        "val_loss_recomputed_plain": 0.5,
        "val_accuracy_moving": moving,
        "val_accuracy_recomputed": recomputed,
        "val_accuracy_recomputed_plain": recomputed,
        "val_accuracy_population": moving,
        "lag_gap": recomputed - moving,
        "lag_se": 0.01,
        "lag_bootstrap_sd": 0.005,
        "lag_p": lag_p,
        "population_gap": 0.0,
        "population_se": 0.01,
        "population_p": 0.5,
        "shift_gap": 0.0,
        "shift_se": 0.01,
        "shift_p": 0.5,
        "batchnorm_momentum": 0.99,
        "augmented": False,
        "recompute_batches": 20,
        "batch_size": 32,
    } | extra


def test_batchnorm_gap_is_a_warning_and_missing_evidence_is_skipped():
    evidence = batchnorm_evidence(0.45, 0.88, lag_p=1e-9)
    result = diagnose(sampled_history(20, 1.0), run="bn", **ORIGINAL, batchnorm=evidence)
    batchnorm = finding(result, "BATCHNORM_STATISTICS")
    assert batchnorm.severity == "warning"
    assert batchnorm.evidence["lag_gap"] == pytest.approx(0.43)
    # Momentum 0.99 > 0.9: the verifiable fix is a faster average, which the run lacks.
    assert batchnorm.change == {"batchnorm_momentum": 0.9}
    skipped = diagnose(sampled_history(20, 1.0), run="bn", **ORIGINAL).skipped
    assert "BATCHNORM_STATISTICS" in [skip.code for skip in skipped]


@pytest.mark.parametrize(
    "moving, recomputed, lag_p",
    [(0.88, 0.885, 0.3), (0.80, 0.81, 1e-6), (0.88, 0.95, 0.2), (0.90, 0.70, 1.0)],
    ids=["agree", "significant-but-small", "large-but-noisy", "stored-better"],
)
def test_batchnorm_statistics_that_agree_are_only_info(moving, recomputed, lag_p):
    result = diagnose(
        sampled_history(20, 0.7),
        run="bn",
        **FULL,
        batchnorm=batchnorm_evidence(moving, recomputed, lag_p),
        predictions=predictions_frame(),
    )
    assert finding(result, "BATCHNORM_STATISTICS").severity == "info"
    assert "STABLE" in codes(result)


@pytest.mark.parametrize("gap, expected", [(0.03, False), (0.23, True)])
def test_augmentation_shift_needs_more_than_ordinary_augmentation_costs(gap, expected):
    evidence = batchnorm_evidence(
        0.9,
        0.75,
        lag_p=0.5,
        augmented=True,
        interpolation="bilinear",
        val_accuracy_recomputed_plain=0.75 + gap,
        shift_gap=gap,
        shift_p=1e-8,
    )
    result = diagnose(sampled_history(20, 0.7), run="aug", **FULL, batchnorm=evidence)
    shift = [f for f in result.findings if f.code == "AUGMENTATION_SHIFT"]
    assert bool(shift) is expected
    if expected:
        assert shift[0].change == {"augmentation": {"interpolation": "nearest"}}


def batches_frame(spike_every: int | None, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    epochs, steps = 5, 40
    step = np.arange(epochs * steps)
    loss = 1.5 * np.exp(-step / 60) + 0.3 + 0.03 * rng.standard_normal(step.size)
    if spike_every:
        loss[steps::spike_every] *= 6
    return pd.DataFrame(
        {
            "epoch": step // steps + 1,
            "batch": step % steps,
            "step": step,
            "batch_size": 32,
            "loss": loss,
            "accuracy": 0.8,
        }
    )


def test_loss_spikes_in_batches_are_unstable_optimization():
    result = diagnose(
        sampled_history(5, 1.0),
        run="spiky",
        **FULL,
        batches=batches_frame(15),
        learning_rate=0.01,
        optimizer="adam",
    )
    unstable = finding(result, "UNSTABLE_OPTIMIZATION")
    assert unstable.severity == "warning"
    assert unstable.evidence["spikes"] >= 10
    assert "runs.spiky.learning_rate" in unstable.fix and "0.0033" in unstable.fix


def test_smooth_batch_losses_are_not_unstable():
    result = diagnose(sampled_history(5, 1.0), run="smooth", **FULL, batches=batches_frame(None))
    assert "UNSTABLE_OPTIMIZATION" not in codes(result)
    assert "UNSTABLE_OPTIMIZATION" not in [skip.code for skip in result.skipped]


def test_nan_training_loss_is_critical():
    history = sampled_history(6, 1.0)
    history.loc[3:, "loss"] = np.nan
    result = diagnose(history, run="diverged", **FULL)
    unstable = finding(result, "UNSTABLE_OPTIMIZATION")
    assert unstable.severity == "critical"
    assert unstable.evidence["first_nonfinite_epoch"] == 4


def rising_validation_loss(val_accuracy) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    epochs = np.arange(1, 21)
    val_loss = np.where(epochs <= 6, 1.2 - 0.15 * epochs, 0.3 + 0.06 * (epochs - 6))
    val_loss = val_loss + 0.01 * rng.standard_normal(20)
    return history_frame(val_loss, val_accuracy, loss=0.02 + 1.2 * np.exp(-epochs / 4))


def test_rising_validation_loss_with_falling_accuracy_is_overfitting_from_its_minimum():
    accuracy = np.where(np.arange(1, 21) <= 6, 0.85, 0.85 - 0.01 * (np.arange(1, 21) - 6))
    history = rising_validation_loss(accuracy)
    result = diagnose(history, run="memorise", **FULL, predictions=predictions_frame())
    overfitting = finding(result, "OVERFITTING")
    assert overfitting.evidence["best_epoch"] in (5, 6, 7)
    assert "runs.memorise.early_stopping" in overfitting.fix
    assert overfitting.change == {
        "early_stopping": {"monitor": "val_loss", "patience": 3, "restore_best_weights": True}
    }
    assert "OVER_CONFIDENCE" not in codes(result)


def test_rising_validation_loss_with_accuracy_holding_is_over_confidence_not_overfitting():
    history = rising_validation_loss(np.linspace(0.80, 0.86, 20))
    result = diagnose(history, run="confident", **FULL, predictions=predictions_frame())
    assert "OVERFITTING" not in codes(result)
    confident = finding(result, "OVER_CONFIDENCE")
    assert "EarlyStopping(monitor='val_loss'" not in confident.fix
    assert "val_accuracy" in confident.fix


def test_noisy_flat_validation_curve_is_not_overfitting():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        history = history_frame(0.4 + 0.02 * rng.standard_normal(20), np.full(20, 0.9))
        result = diagnose(history, run="flat", **FULL, predictions=predictions_frame())
        assert "OVERFITTING" not in codes(result)


def test_imbalanced_training_counts_are_class_imbalance():
    counts = {"blobs": 900, "rings": 100, "streaks": 500}
    result = diagnose(sampled_history(8, 1.0), run="skewed", **FULL, train_label_counts=counts)
    imbalance = finding(result, "CLASS_IMBALANCE")
    assert imbalance.evidence["train_count_ratio"] == 9
    assert "'blobs'" in imbalance.explanation and "'rings'" in imbalance.explanation


def test_predictions_collapsed_onto_one_class_of_balanced_data_are_not_an_imbalance():
    predictions = predictions_frame()
    predictions["predicted"] = np.where(np.arange(1_000) % 10 == 0, "rings", "blobs")
    counts = {"blobs": 500, "rings": 500, "streaks": 500, "grating": 500}
    result = diagnose(
        sampled_history(8, 1.0),
        run="collapsed",
        **FULL,
        predictions=predictions,
        train_label_counts=counts,
    )
    collapse = finding(result, "PREDICTION_COLLAPSE")
    assert collapse.evidence["top_predicted_share"] == pytest.approx(0.9)
    assert collapse.evidence["classes_never_predicted"] == 2
    assert "CLASS_IMBALANCE" not in codes(result)


def test_balanced_data_is_not_class_imbalance():
    counts = {"blobs": 300, "rings": 290, "streaks": 310}
    result = diagnose(
        sampled_history(8, 1.0),
        run="fair",
        **FULL,
        train_label_counts=counts,
        predictions=predictions_frame(),
    )
    assert "CLASS_IMBALANCE" not in codes(result)


def test_one_row_baseline_history_has_no_curve_to_judge():
    history = pd.DataFrame(
        {"epoch": [1], "loss": [0.4], "accuracy": [0.8], "val_loss": [0.5], "val_accuracy": [0.78]}
    )
    result = diagnose(history, run="baseline", **FULL)
    assert result.fluctuation_score is None
    skipped = [skip.code for skip in result.skipped]
    assert {"VALIDATION_SAMPLING_NOISE", "OVERFITTING", "STABLE"} <= set(skipped)
    json.loads(result.to_json())


def test_history_without_validation_columns_says_so_in_skipped():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "loss": [1.0, 0.8, 0.7, 0.6]})
    result = diagnose(history, run="novalidation", **FULL)
    reasons = {skip.code: skip.reason for skip in result.skipped}
    assert "without validation data" in reasons["VALIDATION_SAMPLING_NOISE"]
    assert "val_loss" in reasons["OVERFITTING"]


def test_nan_validation_values_are_left_out_of_the_noise():
    history = sampled_history(20, 0.7)
    history.loc[[4, 11], ["val_loss", "val_accuracy"]] = np.nan
    result = diagnose(history, run="gaps", **FULL, predictions=predictions_frame())
    evidence = finding(result, "VALIDATION_SAMPLING_NOISE").evidence
    assert evidence["epochs"] + evidence["warmup_epochs"] == 18  # warm-up: the first fifth
    assert "STABLE" in codes(result)


def test_invalid_settings_raise_value_error_naming_the_key():
    with pytest.raises(ValueError, match="batch_size"):
        diagnose(
            sampled_history(5, 1.0), run="bad", train_images=10, validation_images=5, batch_size=0
        )


def test_same_inputs_give_byte_identical_plain_json():
    def run():
        return diagnose(
            sampled_history(20, 3.0),
            run="again",
            **ORIGINAL,
            batches=batches_frame(15),
            predictions=predictions_frame(),
            train_label_counts={"a": 10, "b": 40},
        ).to_json()

    text = run()
    assert text == run()
    document = json.loads(text)
    assert list(document) == [
        "run",
        "fluctuation_score",
        "fluctuation_metric",
        "findings",
        "skipped",
        "fluctuation",
    ]
    for item in document["findings"]:
        assert list(item["evidence"]) == sorted(item["evidence"])
        assert item["severity"] in ("info", "warning", "critical")


def test_markdown_has_a_heading_and_an_evidence_table_per_finding():
    result = diagnose(sampled_history(20, 1.0), run="original", **ORIGINAL)
    markdown = result.to_markdown()
    for item in result.findings:
        assert f"`{item.code}`" in markdown
    assert markdown.count("| evidence | value |") == len(result.findings)
    assert "## Skipped checks" in markdown


KERAS_3_CSV = "epoch,accuracy,loss,val_accuracy,val_loss\n"
KERAS_2_CSV = "epoch,acc,loss,val_acc,val_loss\n"


def write_csvlogger(path, header: str, epochs: int = 12) -> None:
    rng = np.random.default_rng(2)
    rows = [
        f"{epoch},{0.5 + 0.03 * epoch},{1.0 / (epoch + 1)},"
        f"{0.6 + 0.1 * rng.random()},{0.8 + 0.5 * rng.random()}"
        for epoch in range(epochs)
    ]
    path.write_text(header + "\n".join(rows) + "\n")


def test_read_history_normalises_keras_2_and_3_csvlogger_files(tmp_path):
    for header in (KERAS_3_CSV, KERAS_2_CSV):
        path = tmp_path / "log.csv"
        write_csvlogger(path, header)
        history = read_history(path)
        assert history["epoch"].tolist() == list(range(1, 13))
        assert {"accuracy", "val_accuracy", "loss", "val_loss"} <= set(history.columns)


def test_read_history_reads_our_tab_separated_history(tmp_path):
    path = tmp_path / "history.tsv"
    sampled_history(5, 1.0).to_csv(path, sep="\t", index=False)
    assert read_history(path)["epoch"].tolist() == [1, 2, 3, 4, 5]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simtrain.diagnose", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


ORIGINAL_ARGS = [
    "--train-images",
    "32000",
    "--validation-images",
    "8000",
    "--batch-size",
    "128",
    "--steps-per-epoch",
    "31",
    "--validation-steps",
    "9",
    "--validation-shuffle",
]


def test_cli_explains_csvlogger_files_and_exits_zero(tmp_path):
    keras3, keras2 = tmp_path / "keras3.csv", tmp_path / "keras2.csv"
    write_csvlogger(keras3, KERAS_3_CSV)
    write_csvlogger(keras2, KERAS_2_CSV)
    text = run_cli(str(keras3), *ORIGINAL_ARGS)
    assert text.returncode == 0, text.stderr
    for code in ("PARTIAL_EPOCH", "PARTIAL_VALIDATION", "VALIDATION_SAMPLING_NOISE"):
        assert code in text.stdout
    assert "BATCHNORM_STATISTICS" in text.stdout  # listed as skipped: it needs the model
    as_json = run_cli(str(keras2), *ORIGINAL_ARGS, "--json", "--run", "resnet")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["run"] == "resnet"
    assert {"PARTIAL_EPOCH", "PARTIAL_VALIDATION"} <= {f["code"] for f in document["findings"]}


def test_cli_fails_clearly_on_a_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "absent.csv"), *ORIGINAL_ARGS])
    assert exit_info.value.code != 0
    assert "absent.csv" in capsys.readouterr().err


def test_cli_rejects_impossible_settings_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "log.csv"
    write_csvlogger(path, KERAS_3_CSV)
    with pytest.raises(SystemExit) as exit_info:
        main([str(path), "--train-images", "100", "--validation-images", "10", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "batch_size must be an integer >= 1" in capsys.readouterr().err


def record_with_drop(epochs: int, images: int, right_before: int, lost: int, gained: int):
    """A fixed-set record: `right_before` images right until epoch 6, then `lost` of them
    wrong and `gained` others right for the rest of the run."""
    from simtrain.diagnosis.validation_record import ValidationRecord

    correct = np.zeros((epochs, images), dtype=np.int8)
    correct[:, :right_before] = 1
    correct[7:, :lost] = 0
    correct[7:, right_before : right_before + gained] = 1
    loss = np.where(correct == 1, 0.2, 2.0).astype(np.float32)
    return ValidationRecord(correct=correct, loss=loss)


def test_a_small_accuracy_drop_on_a_fixed_set_is_overfitting_image_by_image_too():
    # 120 images: 10 lost, 1 gained is -7.5 points on a curve that otherwise does not move;
    # image by image 10 of 11 changes go one way (sign test p = 0.006).
    images, before = 120, 60
    record = record_with_drop(20, images, before, lost=10, gained=1)
    accuracy = record.correct.mean(axis=1)
    # Training accuracy close to validation's: no memorisation gap, only the drop counts.
    history = rising_validation_loss(accuracy).assign(accuracy=accuracy + 0.02)
    settings = dict(train_images=360, validation_images=images, batch_size=16)
    unpaired = diagnose(history, run="noisy", **settings)
    paired = diagnose(history, run="noisy", **settings, validation_record=record)
    assert "OVERFITTING" in codes(unpaired)
    overfitting = finding(paired, "OVERFITTING")
    assert overfitting.evidence["accuracy_drop_paired_p"] < 0.025


def test_an_accuracy_drop_below_the_practical_floor_is_over_confidence():
    # 2 000 images: 40 lost, 0 gained is a clear 2-point drop (p < 1e-11), below the floor.
    record = record_with_drop(20, 2_000, 1_700, lost=40, gained=0)
    accuracy = record.correct.mean(axis=1)
    history = rising_validation_loss(accuracy).assign(accuracy=accuracy + 0.02)
    settings = dict(train_images=8_000, validation_images=2_000, batch_size=32)
    result = diagnose(history, run="tiny-drop", **settings, validation_record=record)
    assert "OVERFITTING" not in codes(result)
    assert finding(result, "OVER_CONFIDENCE").evidence["accuracy_drop_paired_p"] < 1e-6


def test_balanced_churn_on_a_fixed_set_is_not_an_accuracy_drop():
    record = record_with_drop(20, 120, 60, lost=6, gained=6)
    accuracy = record.correct.mean(axis=1)
    history = rising_validation_loss(accuracy).assign(accuracy=accuracy + 0.02)
    settings = dict(train_images=360, validation_images=120, batch_size=16)
    result = diagnose(history, run="churn", **settings, validation_record=record)
    assert "OVERFITTING" not in codes(result)
    assert finding(result, "OVER_CONFIDENCE").evidence["accuracy_drop_paired_p"] > 0.5


def test_validation_accuracy_holding_far_below_training_accuracy_is_memorisation():
    # A tiny training set: training accuracy reaches 1 while validation holds at 0.45.
    history = rising_validation_loss(np.full(20, 0.45)).assign(accuracy=np.linspace(0.5, 1, 20))
    result = diagnose(history, run="tiny", **FULL, predictions=predictions_frame())
    overfitting = finding(result, "OVERFITTING")
    assert overfitting.evidence["train_minus_val_accuracy"] > 0.5
    assert "training accuracy" in overfitting.explanation
    assert "OVER_CONFIDENCE" not in codes(result)


def test_a_real_set_scored_far_below_validation_is_a_sim_to_real_gap(tmp_path):
    from simtrain.diagnosis.run_dir import _sim_to_real

    classes = ["blobs", "rings", "streaks", "grating"]
    validation = predictions_frame()  # 90 % right
    validation.to_csv(tmp_path / "predictions.tsv", sep="\t", index=False)
    real = predictions_frame(400, seed=2).assign(file=[f"f{i}.png" for i in range(400)])
    real["predicted"] = np.where(np.arange(400) % 2 == 0, real["true"], "blobs")  # ~60 % right
    real = real[real["true"] != "grating"]  # a class the real set lacks
    (tmp_path / "field").mkdir()
    real.to_csv(tmp_path / "field" / "predictions.tsv", sep="\t", index=False)
    findings = _sim_to_real(tmp_path, classes, {"field": tmp_path / "field" / "predictions.tsv"})
    (gap,) = findings
    assert gap.code == "SIM_TO_REAL_GAP" and gap.severity == "warning"
    result = diagnose(sampled_history(20, 0.7), run="r", **FULL, predictions=validation)
    assert "STABLE" in codes(result)
    combined = result.with_findings(findings)
    assert "SIM_TO_REAL_GAP" in codes(combined) and "STABLE" not in codes(combined)


def test_overfitting_on_a_subset_of_the_training_images_proposes_all_of_them():
    history = rising_validation_loss(np.full(20, 0.45)).assign(accuracy=np.linspace(0.5, 1, 20))
    result = diagnose(
        history, run="tiny", **FULL, predictions=predictions_frame(), train_subset=True
    )
    assert finding(result, "OVERFITTING").change == {"train_images": None}
