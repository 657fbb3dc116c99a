"""Which findings become sibling runs (simtrain.diagnosis.fixes), and the changes checks give."""

from __future__ import annotations

import pandas as pd
import pytest

from simtrain.common.runs import apply_change, parse_sibling, sibling_name
from simtrain.diagnosis.coverage import check_partial_epoch, check_partial_validation
from simtrain.diagnosis.findings import RunSettings
from simtrain.diagnosis.fixes import plan_fixes

SETTINGS = {
    "model": "small_cnn",
    "epochs": 12,
    "batch_size": 32,
    "learning_rate": 0.002,
    "optimizer": "adam",
    "steps_per_epoch": 3,
    "validation_steps": 1,
    "augmentation": {"zoom": 0.2, "interpolation": "bilinear"},
}


def finding(code, severity="warning", change=None, fix="do something"):
    return {"code": code, "severity": severity, "title": code, "fix": fix, "change": change}


def test_each_warning_with_a_config_change_becomes_one_sibling():
    diagnostics = [
        {
            "findings": [
                finding("PARTIAL_EPOCH", "critical", {"steps_per_epoch": None}),
                finding("STABLE", "info", None),
                finding("VALIDATION_SAMPLING_NOISE", "info", {"validation_steps": None}),
                finding("CLASS_IMBALANCE", "warning", None, fix="balance the classes"),
                finding(
                    "AUGMENTATION_SHIFT", change={"augmentation": {"interpolation": "nearest"}}
                ),
            ]
        }
    ]
    plan = plan_fixes("partial", SETTINGS, diagnostics)
    assert [f["code"] for f in plan["fixes"]] == ["PARTIAL_EPOCH", "AUGMENTATION_SHIFT"]
    assert [f["sibling"] for f in plan["fixes"]] == [
        "partial--fix-partial_epoch",
        "partial--fix-augmentation_shift",
    ]
    # info findings are not verified at all; a warning without a change is listed as such.
    assert plan["not_verified"] == [
        {
            "code": "CLASS_IMBALANCE",
            "reason": "its fix is not one config change: balance the classes",
        }
    ]


def test_a_change_the_run_already_has_is_never_verified():
    diagnostics = [{"findings": [finding("UNDER_TRAINED", change={"epochs": 12})]}]
    plan = plan_fixes("r", SETTINGS, diagnostics)
    assert plan["fixes"] == []
    assert plan["not_verified"][0]["reason"] == 'the run already has {"epochs": 12}'


def test_a_finding_of_several_replicates_is_verified_once_with_the_first_change():
    diagnostics = [
        {"findings": [finding("OVERFITTING", change={"epochs": 5})]},
        {"findings": []},
        {"findings": [finding("OVERFITTING", change={"epochs": 7})]},
    ]
    (fix,) = plan_fixes("r", SETTINGS, diagnostics)["fixes"]
    assert fix["change"] == {"epochs": 5} and fix["found_in_replicates"] == [0, 2]


def test_a_change_updates_a_nested_setting_key_by_key():
    changed = apply_change(SETTINGS, {"augmentation": {"interpolation": "nearest"}})
    assert changed["augmentation"] == {"zoom": 0.2, "interpolation": "nearest"}
    assert SETTINGS["augmentation"]["interpolation"] == "bilinear"  # not mutated
    assert apply_change(SETTINGS, {"steps_per_epoch": None})["steps_per_epoch"] is None


def test_sibling_names_round_trip():
    assert parse_sibling(sibling_name("small_cnn", "PARTIAL_EPOCH")) == (
        "small_cnn",
        "PARTIAL_EPOCH",
    )
    assert parse_sibling("small_cnn") == ("small_cnn", None)


@pytest.mark.parametrize(
    ("check", "change"),
    [
        (check_partial_epoch, {"steps_per_epoch": None}),
        (check_partial_validation, {"validation_steps": None}),
    ],
)
def test_the_coverage_checks_state_their_fix_as_a_config_change(check, change):
    settings = RunSettings.checked(
        run="r",
        train_images=600,
        validation_images=200,
        batch_size=32,
        steps_per_epoch=3,
        validation_steps=1,
        validation_shuffle=True,
        epochs=12,
    )
    history = pd.DataFrame({"epoch": range(1, 13), "loss": 1.0, "val_loss": 1.0})
    assert check(history, settings).change == change


def test_a_change_that_could_not_train_is_not_verified_and_says_why():
    diagnostics = [
        {
            "findings": [
                # A step schedule without its parameters: the sibling's job would fail.
                finding("UNEXPLAINED_FLUCTUATION", change={"lr_schedule": {"kind": "step"}}),
                finding("UNDER_TRAINED", change={"epochs": 24}),
            ]
        }
    ]
    plan = plan_fixes("r", SETTINGS, diagnostics)
    assert [fix["code"] for fix in plan["fixes"]] == ["UNDER_TRAINED"]
    (reason,) = [item["reason"] for item in plan["not_verified"]]
    assert "cannot train" in reason and "lr_schedule" in reason
