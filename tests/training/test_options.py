"""Training options (lr_schedule, early_stopping, ...): defaults, plan-time errors naming the
key, model_params checked without Keras, and config changes that merge sensibly."""

from __future__ import annotations

import re
import sys

import pytest
import yaml
from snakemake.utils import validate

from simtrain.common.runs import apply_change
from simtrain.config import ConfigError, check_runs, check_schema
from simtrain.training.options import (
    DEFAULTS,
    EARLY_STOPPING_DEFAULTS,
    REQUIRED,
    SCHEDULE_PARAMETERS,
    OptionError,
    training_options,
)
from tests.conftest import ROOT

SCHEMA_PATH = ROOT / "workflow/schemas/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
RUN = SCHEMA["$defs"]["run"]["properties"]


def object_branch(prop: dict) -> dict:
    return next(option for option in prop["anyOf"] if option.get("type") == "object")


def test_the_options_defaults_are_the_schemas():
    assert {name: RUN[name]["default"] for name in DEFAULTS} == DEFAULTS
    stopping = object_branch(RUN["early_stopping"])["properties"]
    assert {name: stopping[name]["default"] for name in stopping} == EARLY_STOPPING_DEFAULTS


def test_each_schedule_parameter_is_in_the_schema_with_its_default_in_words():
    """The kind-specific parameters have no schema `default` (Snakemake would fill every kind's
    in); their description states it, and must state the one training uses."""
    properties = object_branch(RUN["lr_schedule"])["properties"]
    names = {name for parameters in SCHEDULE_PARAMETERS.values() for name in parameters}
    assert set(properties) == {"kind", *names}
    assert properties["kind"]["enum"] == list(SCHEDULE_PARAMETERS)
    for kind, parameters in SCHEDULE_PARAMETERS.items():
        for name, default in parameters.items():
            description = " ".join(properties[name]["description"].split())
            assert description.startswith(kind), name
            if default is REQUIRED:
                assert "required" in description and "Default" not in description, name
            else:
                stated = re.search(r"Default: (\S+)\.$", description).group(1)
                assert yaml.safe_load(stated) == default, name


def plan(tiny_config: dict, **run) -> None:
    """Check one run as the Snakefile does before any job: schema, defaults, check_runs."""
    tiny_config["runs"] = {"r": {"model": "small_cnn", "epochs": 6, **run}}
    check_schema(tiny_config, SCHEMA)
    validate(tiny_config, str(SCHEMA_PATH))
    check_runs(tiny_config, search_path=None)


def plan_error(tiny_config: dict, **run) -> str:
    with pytest.raises(ConfigError) as caught:
        plan(tiny_config, **run)
    return str(caught.value).splitlines()[0]


def test_every_option_passes_the_plan_in_its_documented_shape(tiny_config):
    plan(tiny_config, lr_schedule={"kind": "cosine", "alpha": 0.1}, warmup_epochs=1)
    plan(tiny_config, lr_schedule={"kind": "step", "drop": 0.5, "every_epochs": 2})
    plan(
        tiny_config,
        lr_schedule={"kind": "reduce_on_plateau", "monitor": "val_accuracy", "patience": 2},
        early_stopping={"monitor": "val_accuracy", "patience": 2, "restore_best_weights": True},
        checkpoint_monitor="val_accuracy",
        label_smoothing=0.1,
        weight_decay=0.01,
        batchnorm_momentum=0.95,
        model_params={"filters": [8, 16], "dropout": 0.2},
    )


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (
            {"lr_schedule": {"kind": "step", "drop": 0.5}},
            "runs.r.lr_schedule.every_epochs: required by kind 'step'",
        ),
        (
            {"lr_schedule": {"kind": "cosine", "patience": 3}},
            "runs.r.lr_schedule.patience: not a parameter of kind 'cosine' (its parameters: alpha)",
        ),
        (
            {"lr_schedule": {"kind": "step", "drop": 0.5, "every_epochs": 4}, "warmup_epochs": 2},
            "runs.r.lr_schedule.every_epochs: 4 >= the 4 epochs after warm-up: the rate would "
            "never drop",
        ),
        (
            {"lr_schedule": {"kind": "reduce_on_plateau"}, "warmup_epochs": 1},
            "runs.r.warmup_epochs: not with lr_schedule kind 'reduce_on_plateau': Keras' "
            "ReduceLROnPlateau needs a plain learning rate, not a warm-up schedule; use cosine "
            "or step, or warmup_epochs: 0",
        ),
        (
            {"lr_schedule": {"kind": "reduce_on_plateau", "min_learning_rate": 0.01}},
            "runs.r.lr_schedule.min_learning_rate: 0.01 is outside [0, 0.001)",
        ),
        (
            {"warmup_epochs": 6},
            "runs.r.warmup_epochs: 6 >= epochs (6): no epoch would train at full rate",
        ),
        (
            {"model_params": {"width": 3}},
            "runs.r.model_params.width: small_cnn takes no parameter 'width' (its parameters: "
            "filters, dropout)",
        ),
        (
            {"model": "ResNet50", "model_params": {"alpha": 0.5}},
            "runs.r.model_params.alpha: ResNet50 takes no parameter 'alpha' (its parameters: none)",
        ),
        (
            {"model": "MobileNetV3Small", "model_params": {"dropout_rate": 0.5}},
            "runs.r.model_params.dropout_rate: MobileNetV3Small takes no parameter "
            "'dropout_rate' (its parameters: alpha, minimalistic)",
        ),
        (
            {"model": "baseline", "early_stopping": {"patience": 2}},
            "runs.r.early_stopping: the baseline has no training options; deep runs only",
        ),
    ],
)
def test_a_bad_option_fails_at_plan_time_naming_its_key(tiny_config, run, message):
    assert plan_error(tiny_config, **run) == message


@pytest.mark.parametrize(
    ("run", "first_line"),
    [
        (
            {"early_stopping": {"monitor": "val_acc"}},
            "runs.r.early_stopping.monitor: 'val_acc' is not one of",
        ),
        ({"lr_schedule": {"kind": "cosine", "pateince": 3}}, "runs.r.lr_schedule.pateince:"),
        ({"lr_schedule": {"drop": 0.1}}, "runs.r.lr_schedule.kind: required key is missing"),
        ({"checkpoint_monitor": "loss"}, "runs.r.checkpoint_monitor: 'loss' is not one of"),
    ],
)
def test_the_schema_rejects_unknown_keys_and_values_inside_the_options(
    tiny_config, run, first_line
):
    assert plan_error(tiny_config, **run).startswith(first_line)


def test_a_monitor_is_checked_by_the_options_too_for_a_change_made_after_planning():
    with pytest.raises(OptionError, match="early_stopping.monitor: 'val_acc' is not one of"):
        training_options(
            {"epochs": 5, "learning_rate": 0.001, "early_stopping": {"monitor": "val_acc"}}
        )


PLUGIN = """
import keras

def narrow(input_shape, num_classes, width=8, *, depth=1):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(num_classes, activation="softmax")])

def anything(input_shape, num_classes, **params):
    return narrow(input_shape, num_classes)

alias = narrow
"""


def test_a_plugins_model_params_are_checked_against_its_source_without_importing_it(
    tiny_config, tmp_path, monkeypatch
):
    (tmp_path / "optmodels.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)

    def plugin_plan(model, params):
        tiny_config["runs"] = {"r": {"model": model, "epochs": 3, "model_params": params}}
        validate(tiny_config, str(SCHEMA_PATH))
        check_runs(tiny_config, search_path=tmp_path)

    plugin_plan("optmodels:narrow", {"width": 4, "depth": 2})
    plugin_plan("optmodels:anything", {"whatever": 1})  # **params takes any key
    plugin_plan("optmodels:alias", {"whatever": 1})  # not a def: checked when the job builds it
    with pytest.raises(ConfigError) as caught:
        plugin_plan("optmodels:narrow", {"widht": 4})
    assert str(caught.value) == (
        "runs.r.model_params.widht: optmodels:narrow takes no parameter 'widht' (its "
        "parameters: width, depth)"
    )
    with pytest.raises(ConfigError, match="model_params.num_classes: set by simtrain"):
        plugin_plan("optmodels:anything", {"num_classes": 4})
    assert "optmodels" not in sys.modules


SETTINGS = {
    "epochs": 10,
    "learning_rate": 0.001,
    "lr_schedule": {"kind": "reduce_on_plateau", "monitor": "val_loss", "patience": 3},
    "early_stopping": {
        "monitor": "val_loss",
        "patience": 5,
        "min_delta": 0,
        "restore_best_weights": False,
    },
}


def test_a_change_naming_another_schedule_kind_replaces_the_schedule():
    changed = apply_change(SETTINGS, {"lr_schedule": {"kind": "cosine"}})
    assert changed["lr_schedule"] == {"kind": "cosine"}
    assert training_options(changed).lr_schedule == {"kind": "cosine", "alpha": 0.0}


def test_a_change_to_the_same_kind_or_to_early_stopping_merges_key_by_key():
    changed = apply_change(
        SETTINGS,
        {
            "lr_schedule": {"patience": 1},
            "early_stopping": {"monitor": "val_accuracy", "restore_best_weights": True},
        },
    )
    assert changed["lr_schedule"] == {**SETTINGS["lr_schedule"], "patience": 1}
    assert changed["early_stopping"] == {
        "monitor": "val_accuracy",
        "patience": 5,
        "min_delta": 0,
        "restore_best_weights": True,
    }


def test_a_partial_change_to_an_unset_option_takes_the_schema_defaults():
    """A sibling's settings are never schema-filled: training fills the defaults itself."""
    changed = apply_change(
        {"epochs": 10, "learning_rate": 0.001}, {"early_stopping": {"patience": 2}}
    )
    options = training_options(changed)
    assert options.early_stopping == {**EARLY_STOPPING_DEFAULTS, "patience": 2}
    assert options.checkpoint_monitor == "val_loss" and options.lr_schedule is None
    assert training_options(apply_change(changed, {"early_stopping": None})).early_stopping is None
