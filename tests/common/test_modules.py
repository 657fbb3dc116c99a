"""Tests for simtrain.common.modules: a rule's code inputs are every module its script runs."""

from __future__ import annotations

import re

import pytest

from simtrain.common.modules import module_files, workflow_input
from tests.conftest import ROOT

SCRIPTS = ROOT / "workflow" / "scripts"


def relative(files: list[str]) -> set[str]:
    return {str(p).split("src/simtrain/")[1] for p in files}


def test_imports_inside_functions_are_followed():
    # run_dir imports the model evidence (and through it Keras layers) only when a model exists.
    files = relative(module_files(script=SCRIPTS / "diagnose.py"))
    assert {"diagnosis/model_evidence.py", "training/layers.py", "common/logs.py"} <= files
    assert "training/fit.py" not in files


def test_training_inputs_include_the_plugin_resolver_the_models_import():
    files = relative(module_files(script=SCRIPTS / "train.py"))
    assert {"training/fit.py", "training/models.py", "common/plugins.py"} <= files
    assert not any(name.startswith(("diagnosis/", "reporting/")) for name in files)


def test_every_script_has_existing_library_inputs():
    for script in sorted(SCRIPTS.glob("*.py")):
        files = module_files(script=script)
        assert files, script.name
        assert all(p.endswith(".py") for p in files)


def test_an_unknown_module_is_an_error():
    with pytest.raises(ValueError, match="simtrain.nowhere"):
        module_files("simtrain.nowhere")


def test_inputs_inside_the_working_directory_are_named_relative_to_it(tmp_path):
    (tmp_path / "src").mkdir()
    module = tmp_path / "src" / "m.py"
    module.touch()
    assert workflow_input(module, tmp_path) == "src/m.py"
    # Outside it (the code apart from the results): absolute, so the results can move alone.
    elsewhere = tmp_path / "results"
    elsewhere.mkdir()
    assert workflow_input(module, elsewhere) == str(module.resolve())


def test_reading_only_the_import_statements_finds_what_parsing_whole_files_finds(
    monkeypatch, tmp_path
):
    from simtrain.common import modules

    module = tmp_path / "m.py"
    module.write_text(
        "import os\n"
        "from simtrain.common import (\n    logs,  # the job's log\n    files,\n)\n"
        "def f():\n    import simtrain.data.png as png\n"
        "    from simtrain.diagnosis.noise import x\n"
    )
    files = sorted((ROOT / "src/simtrain").rglob("*.py")) + sorted(SCRIPTS.glob("*.py"))
    fast = {path: modules.imports_in(path) for path in [module, *files]}
    assert {"simtrain.common.logs", "simtrain.common.files", "simtrain.data.png"} <= fast[module]
    assert "simtrain.diagnosis.noise" in fast[module]
    # The same pattern made to match a whole file: the whole file parsed, as before.
    monkeypatch.setattr(modules, "_IMPORT_STATEMENT", re.compile(r"\A([\s\S]*)\Z"))
    assert {path: modules.imports_in(path) for path in fast} == fast
