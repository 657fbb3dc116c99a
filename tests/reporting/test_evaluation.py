"""The sim-to-real evaluation report over runs and sets, on hand-made run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.evaluation.scoring import confusion_table
from simtrain.reporting.evaluation import write_evaluation
from simtrain.training.tables import predictions_table

CLASSES = ["a", "b", "c"]


def write_replicate(
    root: Path, run: str, k: int, model: str, validation_right: float, real_right: np.ndarray
) -> Path:
    """A replicate folder with validation predictions (60 images) and set 'field' scored."""
    run_dir = root / "runs" / run / f"seed-{k}"
    (run_dir / "evaluation" / "field").mkdir(parents=True)
    metrics = {"run": run, "replicate": k, "model": model, "classes": CLASSES}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    labels = np.repeat([0, 1, 2], 20)
    right = np.arange(60) < validation_right * 60
    predictions_table(np.eye(3)[np.where(right, labels, (labels + 1) % 3)], labels, CLASSES).to_csv(
        run_dir / "predictions.tsv", sep="\t", index=False
    )
    real_labels = np.repeat([0, 1], len(real_right) // 2)  # no images of class c
    table = predictions_table(np.eye(3)[np.where(real_right, real_labels, 2)], real_labels, CLASSES)
    table.insert(0, "file", [f"{CLASSES[y]}/{i}.png" for i, y in enumerate(real_labels)])
    table.to_csv(run_dir / "evaluation/field/predictions.tsv", sep="\t", index=False)
    return run_dir


def test_the_report_scores_runs_against_the_baseline_and_names_a_gap(tmp_path):
    n = 80
    dirs = [
        write_replicate(tmp_path, "net", k, "small_cnn", 0.95, np.arange(n) < 0.55 * n)
        for k in range(2)
    ]
    dirs.append(write_replicate(tmp_path, "base", 0, "baseline", 0.6, np.arange(n) % 2 == 0))
    files = pd.DataFrame({"file": ["x"] * n, "class": ["a"] * (n // 2) + ["b"] * (n // 2)})
    files.to_csv(tmp_path / "files.tsv", sep="\t", index=False)
    table = write_evaluation(
        dirs,
        {"field": tmp_path / "files.tsv"},
        CLASSES,
        markdown_path=tmp_path / "evaluation.md",
        tsv_path=tmp_path / "evaluation.tsv",
    )
    net, base = table.iloc[0], table.iloc[1]
    assert net["run"] == "net" and net["seeds"] == 2 and net["images"] == n
    assert net["accuracy"] == 0.55 and net["validation_accuracy"] == 0.95
    assert net["missing_classes"] == "c"
    assert net["sim_to_real_gap"] == "no"  # two identical seeds: t on 1 df, an honest "unknown"
    assert base["sim_to_real_gap"] == "no" and base["beats_baseline"] == ""
    markdown = (tmp_path / "evaluation.md").read_text()
    assert "No images of c" in markdown
    # Per class over both seeds: net gets all of a and 4 of 40 b per seed right.
    assert "| a | 1.00 (80/80) | 0.50 (20/40) |" in markdown
    assert "| b | 0.10 (8/80) | 0.50 (20/40) |" in markdown
    assert "| c | - | - |" in markdown

    one_seed = write_evaluation(
        [dirs[0], dirs[2]],
        {"field": tmp_path / "files.tsv"},
        CLASSES,
        markdown_path=tmp_path / "one.md",
        tsv_path=tmp_path / "one.tsv",
    )
    assert one_seed.iloc[0]["sim_to_real_gap"] == "warning"  # 0.95 vs 0.55, images only
    assert "SIM_TO_REAL_GAP" in (tmp_path / "one.md").read_text()


def test_the_confusion_table_lists_every_class_even_without_images():
    predictions = pd.DataFrame({"true": ["a", "a", "b"], "predicted": ["a", "b", "b"]})
    table = confusion_table(predictions, CLASSES)
    assert table["true"].tolist() == CLASSES
    assert table.drop(columns="true").to_numpy().tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
