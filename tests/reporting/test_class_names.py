"""Class names pandas would re-type (NA, null, None, nan, 007) survive predictions.tsv."""

from __future__ import annotations

import numpy as np

from simtrain.reporting.run_results import load_run
from simtrain.training.tables import predictions_table, read_predictions

CLASSES = ["NA", "null", "None", "nan", "007"]


def test_predictions_keep_class_names_that_look_missing_or_numeric(tmp_path):
    labels = np.arange(5)
    table = predictions_table(np.eye(5)[[0, 1, 2, 4, 3]], labels, CLASSES)
    table.to_csv(tmp_path / "predictions.tsv", sep="\t", index=False)
    read = read_predictions(tmp_path / "predictions.tsv")
    assert read["true"].tolist() == CLASSES
    assert read["predicted"].tolist() == ["NA", "null", "None", "007", "nan"]
    (tmp_path / "metrics.json").write_text('{"run": "odd", "model": "small_cnn"}')
    run = load_run(tmp_path)
    assert run.correct.tolist() == [True, True, True, False, False]
    assert run.classes == CLASSES
