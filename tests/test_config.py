"""Config errors a person can read: the key path, the bad value, what is allowed."""

from __future__ import annotations

import pytest
import yaml

from simtrain.config import (
    ConfigError,
    check_config_files,
    check_runs,
    check_schema,
    config_error_report,
)
from tests.conftest import ROOT

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def schema_error(config: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        check_schema(config, SCHEMA)
    return str(caught.value)


def test_the_tiny_and_default_configs_pass(tiny_config):
    check_schema(tiny_config, SCHEMA)
    check_schema(yaml.safe_load((ROOT / "config/config.yaml").read_text()), SCHEMA)


def test_a_typo_names_the_closest_known_key(tiny_config):
    tiny_config["image_sise"] = 32
    message = schema_error(tiny_config)
    assert message.splitlines()[:2] == ["image_sise: unknown key", "did you mean 'image_size'?"]


def test_a_typo_inside_a_run_names_the_full_key_path(tiny_config):
    tiny_config["runs"] = {"cnn": {"model": "small_cnn", "learning_rat": 0.1}}
    message = schema_error(tiny_config)
    assert message.startswith("runs.cnn.learning_rat: unknown key\ndid you mean 'learning_rate'?")


def test_an_out_of_range_value_names_the_value_and_the_range(tiny_config):
    tiny_config["runs"] = {"cnn": {"augmentation": {"zoom": 1.5}}}
    lines = schema_error(tiny_config).splitlines()
    assert lines[0].startswith("runs.cnn.augmentation.zoom: 1.5 ")
    assert lines[1] == "allowed: a number >= 0 and < 1"
    assert lines[2].startswith("meaning: Zoom range")


def test_an_enum_lists_the_allowed_values_in_yaml_spelling(tiny_config):
    tiny_config["execution"] = {"mixed_precision": "yes"}
    lines = schema_error(tiny_config).splitlines()
    assert lines[0].startswith("execution.mixed_precision: 'yes' is not one of")
    assert lines[1] == 'allowed: one of "auto", true, false'


def test_a_wrong_type_names_the_expected_type(tiny_config):
    tiny_config["seed"] = "abc"
    assert schema_error(tiny_config).splitlines()[0] == "seed: 'abc' is not of type 'integer'"


def test_a_bad_class_name_is_named_with_its_parent(tiny_config):
    tiny_config["classes"]["bad name"] = {"simulator": "blobs"}
    assert schema_error(tiny_config).startswith("classes.bad name: invalid name")


def test_a_missing_required_key_is_named(tiny_config):
    del tiny_config["runs"]
    tiny_config["predict"] = {"field": {"run": "cnn"}}  # a prediction needs its folder
    assert schema_error(tiny_config) == "predict.field.folder: required key is missing"


def test_a_class_without_a_simulator_or_a_folder_is_named(tiny_config):
    from simtrain.config import check_classes

    del tiny_config["classes"]["rings"]["simulator"]
    with pytest.raises(ConfigError, match=r"^classes\.rings: needs a simulator or a folder"):
        check_classes(tiny_config, search_path=None)


def test_the_report_is_a_few_lines_naming_the_config_file(tiny_config):
    tiny_config["image_sise"] = 32
    try:
        check_schema(tiny_config, SCHEMA)
    except ConfigError as error:
        report = config_error_report(error, ["my/config.yaml"])
    lines = report.splitlines()
    assert lines[0] == "Invalid config: image_sise: unknown key"
    assert "  config file: my/config.yaml" in lines
    assert len(lines) <= 6


def test_a_plan_time_check_uses_the_same_short_form(tiny_config):
    tiny_config["runs"] = {"r": {"model": "small_cnn", "batch_size": 8, "steps_per_epoch": 50}}
    check_schema(tiny_config, SCHEMA)  # valid for the schema: only the data rule catches it
    tiny_config["runs"]["r"].update(train_images=None, validation_steps=None, seed=None)
    with pytest.raises(ConfigError) as caught:
        check_runs(tiny_config, search_path=None)
    report = config_error_report(caught.value, ["c.yaml"])
    assert report.startswith("Invalid config: runs.r.steps_per_epoch: 50 batches of 8")
    assert len(report.splitlines()) <= 4


TINY_YAML = """seed: 7
image_size: 32
images_per_class: 4
classes:
  {name}:
    simulator: blobs
  rings:
    simulator: rings
"""


@pytest.mark.parametrize(
    ("name", "read_as"),
    [("007", "the int 7"), ("yes", "the bool True"), ("null", "null"), ("off", "the bool False")],
)
def test_a_class_name_yaml_would_retype_is_rejected_with_its_line_and_quoting_advice(
    tmp_path, name, read_as
):
    path = tmp_path / "config.yaml"
    path.write_text(TINY_YAML.format(name=name))
    with pytest.raises(ConfigError) as caught:
        check_config_files([path])
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{path}, line 5: the name {name} is read by YAML as {read_as}")
    assert lines[1].startswith(f'quote it: "{name}":')


@pytest.mark.parametrize("name", ['"007"', "'yes'", '"null"'])
def test_a_quoted_class_name_is_kept_as_written(tmp_path, name):
    path = tmp_path / "config.yaml"
    path.write_text(TINY_YAML.format(name=name))
    check_config_files([path])
    assert name.strip("'\"") in yaml.safe_load(path.read_text())["classes"]


def test_a_name_that_is_not_text_is_rejected_even_without_a_file(tiny_config):
    tiny_config["runs"] = {7: {"model": "small_cnn"}}  # --config 'runs={007: {...}}'
    message = schema_error(tiny_config)
    assert message.startswith("runs.7: the name is the int 7, not text")


def test_a_nested_value_that_arrived_as_text_gets_the_overlay_hint(tiny_config):
    # What `--config 'runs={cnn: {epochs: 3}}'` gives: Snakemake's BaseLoader keeps '3' text.
    tiny_config["runs"] = {"cnn": {"model": "small_cnn", "epochs": "3"}}
    lines = schema_error(tiny_config).splitlines()
    assert lines[0] == "runs.cnn.epochs: '3' is not of type 'integer'"
    assert "--configfile config/config.yaml mine.yaml" in lines[2]
    # A word in the wrong place is a plain type error: no hint about --config.
    tiny_config["runs"]["cnn"]["epochs"] = "three"
    assert "--config" not in schema_error(tiny_config)
