import json
import os
import re
import signal
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from simtrain.common.failpoints import ENVIRONMENT_VARIABLE as FAILPOINT_VARIABLE
from simtrain.common.files import aside_path
from simtrain.reporting.statistics import wilson_interval
from simtrain.training.batches import PackedBatches
from simtrain.training.fit import train_run
from simtrain.training.tables import BATCH_COLUMNS, HISTORY_COLUMNS, TIMING_COLUMNS
from tests.conftest import ROOT
from tests.packed_data import make_packed

SETTINGS = {
    "model": "small_cnn",
    "epochs": 3,
    "batch_size": 8,
    "optimizer": "adam",
    "learning_rate": 0.002,
    "steps_per_epoch": None,
    "validation_steps": None,
    "validation_shuffle": False,
    "augmentation": {"shear": 10.0, "zoom": 0.2, "horizontal_flip": True},
    "standardize": True,
    "train_images": None,
    "seed": 3,
}
ARTIFACTS = [
    "history.tsv",
    "batches.tsv",
    "timing.tsv",
    "predictions.tsv",
    "model.keras",
    "best.keras",
    "metrics.json",
    "config.resolved.yaml",
    "validation_record.npz",
    "epochs",
    "precise_bn.keras",
    "predictions_precise_bn.tsv",
]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return make_packed(tmp_path_factory.mktemp("data"))


def spec(packed, out_dir, **overrides):
    return {
        "run": "tiny",
        "settings": {**SETTINGS, **overrides},
        "train_dir": str(packed / "train"),
        "validation_dir": str(packed / "validation"),
        "out_dir": str(out_dir),
        "resolved_config": {"seed": 0, "run": {**SETTINGS, **overrides}},
    }


def run_in_process(packed, out_dir, backend="tensorflow", check=True, env=None, **overrides):
    """Train in a fresh interpreter (a real process that can be killed, any backend)."""
    job = dict(spec(packed, out_dir), **overrides.pop("job", {}))
    job["settings"].update(overrides)
    spec_file = out_dir.parent / f"{out_dir.name}.json"
    spec_file.write_text(json.dumps(job))
    return subprocess.run(
        [sys.executable, "-m", "tests.train_job", str(spec_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": backend, **(env or {})},
        timeout=600,
        check=check,
        start_new_session=True,  # a failpoint kills its process group, never pytest's
    )


def read(out_dir, name):
    return pd.read_csv(out_dir / name, sep="\t")


@pytest.mark.parametrize("model", ["small_cnn", "resnet50"])
def test_each_model_trains_and_writes_every_artifact(packed, tmp_path, model):
    metrics = train_run(**spec(packed, tmp_path, model=model, epochs=2))
    assert sorted(os.listdir(tmp_path)) == sorted(ARTIFACTS)
    # Each epoch's weights for the diagnosis: kept for a small model, not for ResNet50.
    # The robust score: the final weights with precise BatchNorm statistics.
    precise = read(tmp_path, "predictions_precise_bn.tsv")
    assert (precise["index"] == read(tmp_path, "predictions.tsv")["index"]).all()
    accuracy = (precise["true"] == precise["predicted"]).mean()
    assert metrics["precise_bn_val_accuracy"] == pytest.approx(accuracy)
    kept = sorted(os.listdir(tmp_path / "epochs"))
    assert kept == (
        ["epoch-001.weights.h5", "epoch-002.weights.h5"] if model == "small_cnn" else []
    )
    history = read(tmp_path, "history.tsv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2]
    assert history["train_images_seen"].tolist() == [36, 36]
    assert history["train_coverage"].tolist() == [1.0, 1.0]
    assert history["validation_images_seen"].tolist() == [12, 12]
    assert list(read(tmp_path, "timing.tsv").columns) == TIMING_COLUMNS
    batches = read(tmp_path, "batches.tsv")
    assert list(batches.columns) == BATCH_COLUMNS
    assert len(batches) == 2 * 5 and batches["batch_size"].sum() == 72
    predictions = read(tmp_path, "predictions.tsv")
    assert len(predictions) == 12
    assert list(predictions.columns[:4]) == ["index", "true", "predicted", "loss"]
    assert np.allclose(predictions.filter(like="p_").sum(axis=1), 1, atol=1e-4)
    assert metrics["model"] == model and metrics["train_images"] == 36


def test_small_cnn_learns_the_tiny_problem(packed, tmp_path):
    metrics = train_run(**spec(packed, tmp_path, epochs=8, augmentation={}))
    assert metrics["best_val_accuracy"] > 0.6  # chance is 1/3


def test_partial_epochs_are_accounted_for_and_continue_the_stream(packed, tmp_path):
    train_run(
        **spec(packed, tmp_path, steps_per_epoch=2, validation_steps=1, validation_shuffle=True)
    )
    history = read(tmp_path, "history.tsv")
    # 36 images in batches of 8 make passes of 8+8+8+8+4; epoch 3 takes the last
    # (short) batch of pass 1 and the first of pass 2, like Keras 2's endless generator.
    assert history["train_images_seen"].tolist() == [16, 16, 12]
    assert history["train_coverage"].tolist()[:2] == pytest.approx([16 / 36] * 2)
    assert 0 < history["train_coverage"].iloc[2] <= 12 / 36
    assert history["validation_images_seen"].tolist() == [8, 4, 8]  # 12 = 8 + 4 per pass
    assert len(read(tmp_path, "batches.tsv")) == 6
    assert len(read(tmp_path, "predictions.tsv")) == 12  # always the full validation set


def test_train_images_trains_on_a_stratified_subset(packed, tmp_path):
    metrics = train_run(**spec(packed, tmp_path, train_images=12, epochs=1))
    assert metrics["train_images"] == 12
    assert read(tmp_path, "history.tsv")["train_images_seen"].tolist() == [12]


def test_same_seed_gives_identical_history_on_cpu(packed, tmp_path):
    train_run(**spec(packed, tmp_path / "a"))
    train_run(**spec(packed, tmp_path / "b"))
    for name in ["history.tsv", "batches.tsv", "predictions.tsv"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    train_run(**spec(packed, tmp_path / "c", seed=4))
    assert (tmp_path / "c/history.tsv").read_bytes() != (tmp_path / "a/history.tsv").read_bytes()


def served_training_images(monkeypatch, packed, steps: int) -> list[np.ndarray]:
    """Record every training batch PackedBatches hands to Keras during fit (the sampler
    with `steps` per epoch, not the full pass for precise BN statistics after it), as row
    numbers of the packed training images (found by content, not the sampler's formula)."""
    train = np.load(packed / "train" / "images.npy")
    row_of = {image.tobytes(): i for i, image in enumerate(train)}
    assert len(row_of) == len(train), "the tiny training images are not all distinct"
    served = []
    original = PackedBatches.__getitem__

    def recording(self, step):
        images, targets = original(self, step)
        if len(self.split) == len(train) and self.steps == steps:
            served.append(np.array([row_of[image.tobytes()] for image in np.asarray(images)]))
        return images, targets

    monkeypatch.setattr(PackedBatches, "__getitem__", recording)
    return served


def test_images_seen_and_coverage_are_those_of_the_batches_served(packed, tmp_path, monkeypatch):
    served = served_training_images(monkeypatch, packed, steps=2)
    train_run(**spec(packed, tmp_path, steps_per_epoch=2, augmentation={}))
    history = read(tmp_path, "history.tsv")
    batches = read(tmp_path, "batches.tsv")
    # Keras fetches the first batches once more before training, to learn their shapes;
    # the rest are 3 epochs of 2 batches.
    peeked = len(served) - 3 * 2
    assert 0 <= peeked <= 2
    # Loader threads may hand batches over in any order, the peeked ones included.
    first_epoch = {tuple(batch) for batch in served[peeked : peeked + 2]}
    assert all(tuple(batch) in first_epoch for batch in served[:peeked])
    served = served[peeked:]
    for epoch in (1, 2, 3):
        rows = np.concatenate(served[2 * (epoch - 1) : 2 * epoch])
        recorded = history.loc[epoch - 1]
        assert recorded["train_images_seen"] == len(rows)
        assert recorded["train_coverage"] == pytest.approx(len(np.unique(rows)) / 36)
        sizes = batches.loc[batches["epoch"] == epoch, "batch_size"].tolist()
        # Loader threads may fetch an epoch's batches out of order.
        assert sorted(sizes) == sorted(len(batch) for batch in served[2 * (epoch - 1) : 2 * epoch])


def resumed_and_trained(result) -> tuple[int, list[int]]:
    """(the epoch a training process resumed after, 0 if it started afresh; the epochs it
    ran), from simtrain's resume log line and Keras' own 'Epoch k/n' progress lines."""
    resumed = re.findall(r"resuming after epoch (\d+)", result.stderr)
    trained = re.findall(r"^Epoch (\d+)/\d+", result.stdout + result.stderr, re.M)
    return (int(resumed[-1]) if resumed else 0), [int(epoch) for epoch in trained]


def weights(path):
    return keras.models.load_model(path).get_weights()


def assert_same_run(resumed, reference):
    for name in ["history.tsv", "batches.tsv", "predictions.tsv"]:
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
    for name in ["model.keras", "best.keras"]:
        for ours, theirs in zip(weights(resumed / name), weights(reference / name), strict=True):
            assert np.array_equal(ours, theirs), name
    assert not (resumed / ".backup").exists()


@pytest.fixture(scope="module")
def reference(packed, tmp_path_factory):
    """An uninterrupted run in its own process, to compare resumed runs with."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = run_in_process(packed, out)
    assert resumed_and_trained(result) == (0, [1, 2, 3])
    return out


# How each kill is armed, and the epochs done by then: inside epoch 2 (its failpoint, after
# the epoch's second batch) and as epoch 3 begins (after its first batch).
KILLS = {
    "mid-epoch": ({"env": {FAILPOINT_VARIABLE: "train.mid_epoch"}}, 1),
    "start-of-epoch": ({"job": {"kill_at": [3, 0]}}, 2),
}


@pytest.mark.parametrize("kill", KILLS)
def test_a_killed_run_resumes_after_its_last_epoch_to_the_uninterrupted_run(
    packed, tmp_path, reference, kill
):
    how, done = KILLS[kill]
    resumed = tmp_path / "resumed"
    killed = run_in_process(packed, resumed, check=False, **how)
    assert killed.returncode == -signal.SIGKILL
    assert not (resumed / "history.tsv").exists()
    state = json.loads((resumed / ".backup" / "state.json").read_text())
    assert len(state["history"]) == done
    second = run_in_process(packed, resumed)
    # Resumed, not restarted: a restart would end with the same tables (training is
    # deterministic), so check which epochs the second process actually trained.
    assert resumed_and_trained(second) == (done, list(range(done + 1, 4)))
    assert_same_run(resumed, reference)


def test_a_backup_made_with_another_learning_rate_is_discarded_to_the_uninterrupted_run(
    packed, tmp_path, reference
):
    resumed = tmp_path / "resumed"
    killed = run_in_process(
        packed, resumed, check=False, job={"kill_at": [2, 2]}, learning_rate=0.01
    )
    assert killed.returncode == -signal.SIGKILL
    assert len(json.loads((resumed / ".backup" / "state.json").read_text())["history"]) == 1
    # Rerun with the reference's learning rate: the stale epoch is not resumed from.
    second = run_in_process(packed, resumed)
    assert "ignoring a backup made for other settings or data" in second.stderr
    assert resumed_and_trained(second) == (0, [1, 2, 3])
    assert_same_run(resumed, reference)


def test_a_kill_while_swapping_backups_keeps_the_previous_backup(packed, tmp_path, reference):
    resumed = tmp_path / "resumed"
    # Killed at the end of epoch 2, epoch 1's backup moved aside and epoch 2's not yet in.
    killed = run_in_process(
        packed, resumed, check=False, env={FAILPOINT_VARIABLE: "files.directory_swap"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert resumed_and_trained(killed) == (0, [1, 2])
    assert not (resumed / ".backup").exists()
    assert (aside_path(resumed / ".backup") / "state.json").exists()
    second = run_in_process(packed, resumed)
    assert resumed_and_trained(second) == (1, [2, 3])
    assert_same_run(resumed, reference)
    assert not aside_path(resumed / ".backup").exists()


@pytest.fixture(scope="module")
def jax_run(packed, tmp_path_factory):
    """The reference run's settings trained under JAX, in its own process."""
    out = tmp_path_factory.mktemp("jax") / "run"
    result = run_in_process(packed, out, backend="jax")
    assert "backend jax" in result.stderr
    return out


def test_training_code_runs_under_the_jax_backend(jax_run):
    history = read(jax_run, "history.tsv")
    assert list(history.columns) == HISTORY_COLUMNS and len(history) == 3
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    metrics = json.loads((jax_run / "metrics.json").read_text())
    assert metrics["backend"] == "jax"


# The same weights give the same probabilities under both backends to within float32
# round-off of different convolution kernels (measured: ~1e-6).
PROBABILITY_TOLERANCE = 1e-4
PREDICT_SCRIPT = """
import sys, numpy as np, keras
import simtrain.training.layers  # registers simtrain's layers for load_model
model = keras.models.load_model(sys.argv[1])
images = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict(images, batch_size=8, verbose=0))
"""


def probabilities_under(backend, model, packed, out):
    subprocess.run(
        [
            sys.executable,
            "-c",
            PREDICT_SCRIPT,
            str(model),
            str(packed / "validation/images.npy"),
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return np.load(out)


def saved_probabilities(run_dir):
    predictions = read(run_dir, "predictions.tsv")
    return predictions[[c for c in predictions.columns if c.startswith("p_")]].to_numpy()


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_a_model_saved_under_one_backend_predicts_the_same_under_the_other(
    packed, reference, jax_run, tmp_path, backend
):
    trained, other = (reference, "jax") if backend == "tensorflow" else (jax_run, "tensorflow")
    predicted = probabilities_under(other, trained / "model.keras", packed, tmp_path / "p.npy")
    # predictions.tsv holds 4 decimals: compare the saved run's file at its own precision too.
    assert np.abs(predicted - saved_probabilities(trained)).max() <= PROBABILITY_TOLERANCE + 5e-5


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A small problem (60 images per class, 45 for validation) learned under each backend
    (8 epochs, no augmentation), each in its own process."""
    root = tmp_path_factory.mktemp("learned")
    data = make_packed(root, per_class=60)
    for backend in ("tensorflow", "jax"):
        run_in_process(data, root / backend, backend=backend, epochs=8, augmentation={})
    return root


def test_both_backends_learn_a_small_problem_to_accuracies_within_sampling_noise(learned):
    """Different random streams (initialisation, batch order) give different runs; what must
    agree is what they learn: final accuracies within 3 standard errors of their difference
    on the validation images, both far above chance."""
    accuracies = []
    for backend in ("tensorflow", "jax"):
        predictions = read(learned / backend, "predictions.tsv")
        accuracies.append((predictions["true"] == predictions["predicted"]).mean())
    n = len(predictions)
    pooled = np.mean(accuracies)
    se = np.sqrt(2 * max(pooled * (1 - pooled), 1 / n) / n)
    assert abs(accuracies[0] - accuracies[1]) <= 3 * se, accuracies
    for accuracy in accuracies:  # both above chance (1/3): the Wilson lower bound
        assert wilson_interval(round(accuracy * n), n)[0] > 1 / 3, accuracies


def test_a_jax_trained_run_is_diagnosed_with_its_model_evidence(packed, jax_run, tmp_path):
    script = (
        "import json, sys\n"
        "from simtrain.diagnosis.run_dir import diagnose_run_dir\n"
        "diagnose_run_dir(sys.argv[1], run='tiny', settings=json.loads(sys.argv[2]),"
        " train_dir=sys.argv[3], validation_dir=sys.argv[4], json_path=sys.argv[5],"
        " markdown_path=sys.argv[6])\n"
    )
    json_path = tmp_path / "diagnostics.json"
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(jax_run),
            json.dumps(SETTINGS),
            str(packed / "train"),
            str(packed / "validation"),
            str(json_path),
            str(tmp_path / "diagnostics.md"),
        ],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        check=True,
        capture_output=True,
        timeout=300,
    )
    diagnostics = json.loads(json_path.read_text())
    skipped = {item["code"] for item in diagnostics["skipped"]}
    # The evidence that needs the model (BatchNorm statistics recomputed) ran under JAX.
    assert not {"BATCHNORM_STATISTICS", "AUGMENTATION_SHIFT"} & skipped
    assert diagnostics["fluctuation_score"] is not None


def test_data_parallel_training_runs_on_two_virtual_devices_under_jax(packed, tmp_path):
    result = run_in_process(
        packed,
        tmp_path / "parallel",
        backend="jax",
        epochs=1,
        job={"data_parallel": True},
        env={"JAX_NUM_CPU_DEVICES": "2"},
    )
    assert "data parallel True" in result.stderr
    assert "2 devices" in result.stderr
    history = read(tmp_path / "parallel", "history.tsv")
    assert history["train_images_seen"].tolist() == [36]
