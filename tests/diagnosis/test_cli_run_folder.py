"""`simtrain-diagnose RUN_DIR`: a workflow run folder diagnosed from what it holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simtrain.diagnosis.cli import main
from tests.conftest import seed_dir

# The console command uv installs beside the interpreter (pyproject.toml [project.scripts]).
COMMAND = Path(sys.executable).parent / "simtrain-diagnose"


def codes(document: dict, key: str) -> set[str]:
    return {item["code"] for item in document[key]}


def test_a_run_folder_is_diagnosed_with_its_settings_and_model_like_the_workflow(
    finished_workflow,
):
    folder = finished_workflow.results / seed_dir("cnn_partial")
    result = subprocess.run(
        [COMMAND, folder, "--json"], capture_output=True, text=True, timeout=300, check=True
    )
    document = json.loads(result.stdout)
    workflow = json.loads((folder / "diagnostics.json").read_text())
    assert document["run"] == "cnn_partial"
    assert codes(document, "findings") == codes(workflow, "findings")
    assert codes(document, "skipped") == codes(workflow, "skipped")
    # The model and the packed data were found: the checks that need them ran.
    assert not {"BATCHNORM_STATISTICS", "AUGMENTATION_SHIFT"} & codes(document, "skipped")
    assert document["fluctuation_score"] == pytest.approx(workflow["fluctuation_score"], rel=1e-3)
    # Advice in the workflow's own keys.
    partial = next(f for f in document["findings"] if f["code"] == "PARTIAL_EPOCH")
    assert "runs.cnn_partial.steps_per_epoch" in partial["fix"]


def test_a_run_folder_takes_no_counts_from_the_command_line(finished_workflow, capsys):
    folder = finished_workflow.results / seed_dir("base")
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), "--batch-size", "8"])
    assert exit_info.value.code == 2
    assert "come from its metrics.json and config.resolved.yaml" in capsys.readouterr().err


def test_a_history_file_needs_its_counts_and_the_help_names_the_command(tmp_path, capsys):
    path = tmp_path / "training.csv"
    path.write_text("epoch,loss,val_loss\n0,1.0,1.1\n1,0.9,1.0\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(path)])
    assert exit_info.value.code == 2
    assert "--train-images, --validation-images, --batch-size required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: simtrain-diagnose")
