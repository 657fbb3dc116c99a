"""TensorBoard logs of a run hold its tables' values, per batch and per epoch."""

from __future__ import annotations

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from simtrain.training.fit import train_run
from simtrain.training.tensorboard import TENSORBOARD_DIR, TensorBoardLog
from tests.packed_data import make_packed
from tests.training.test_train import spec


def scalars(log_dir, tag) -> dict[int, float]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {event.step: event.value for event in events.Scalars(tag)}


def test_the_logs_hold_the_batch_and_epoch_values_of_the_tables(tmp_path):
    packed = make_packed(tmp_path / "data")
    out = tmp_path / "run"
    (out / TENSORBOARD_DIR / "train").mkdir(parents=True)
    (out / TENSORBOARD_DIR / "train" / "stale").write_text("an earlier run's logs")
    train_run(**spec(packed, out, epochs=2, steps_per_epoch=3), callbacks=[TensorBoardLog(out)])
    logs = out / TENSORBOARD_DIR
    assert not (logs / "train" / "stale").exists()
    history = pd.read_csv(out / "history.tsv", sep="\t").set_index("epoch")
    batches = pd.read_csv(out / "batches.tsv", sep="\t").set_index("step")
    for column in ("loss", "accuracy", "learning_rate", "train_coverage"):
        logged = scalars(logs / "train", f"epoch_{column}")
        assert logged == pytest.approx(history[column].to_dict(), rel=1e-6), column
    for column in ("loss", "accuracy"):
        logged = scalars(logs / "validation", f"epoch_{column}")
        assert logged == pytest.approx(history[f"val_{column}"].to_dict(), rel=1e-6), column
        # The batch's own value, which Keras' running mean is not.
        logged = scalars(logs / "train", f"batch_{column}")
        assert logged == pytest.approx(batches[column].to_dict(), rel=1e-5, abs=1e-6), column
    assert len(batches) == 2 * 3
