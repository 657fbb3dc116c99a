"""Verified fixes (simtrain.reporting.verification) on run folders with known outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.reporting.artifacts import verify_run_dirs
from simtrain.reporting.run_results import load_run
from simtrain.reporting.verification import RunGroup, verify_fixes
from tests.reporting.test_comparison import correct_mask, write_run


def group(root: Path, run: str, masks, findings=(), val_accuracy=None) -> RunGroup:
    results = []
    for k, mask in enumerate(masks):
        run_dir = write_run(root, run, "small_cnn", mask, findings=findings, replicate=k)
        if val_accuracy is not None:
            history = pd.read_csv(run_dir / "history.tsv", sep="\t")
            history["val_accuracy"] = val_accuracy
            history.to_csv(run_dir / "history.tsv", sep="\t", index=False)
        results.append(load_run(run_dir))
    return RunGroup(run, results)


def plan(*codes_changes):
    fixes = [
        {"code": code, "severity": "warning", "change": change, "sibling": f"r--fix-{code.lower()}"}
        for code, change in codes_changes
    ]
    return {"run": "r", "fixes": fixes, "not_verified": []}


def verdicts(table: pd.DataFrame) -> dict:
    return dict(zip(table["finding"], table["verdict"]))


def test_a_fix_that_removes_the_finding_and_raises_accuracy_is_confirmed(tmp_path):
    before_mask = correct_mask(0.3, 1)
    before = group(tmp_path, "r", [before_mask], [("PARTIAL_EPOCH", "critical")])
    better = group(tmp_path, "r--fix-partial_epoch", [before_mask | correct_mask(0.5, 2)])
    same = group(tmp_path, "r--fix-augmentation_shift", [before_mask])
    groups = {g.run: g for g in (before, better, same)}
    table = verify_fixes(
        plan(("PARTIAL_EPOCH", {"steps_per_epoch": None}), ("AUGMENTATION_SHIFT", {"a": 1})),
        groups,
    )
    assert verdicts(table) == {"PARTIAL_EPOCH": "confirmed", "AUGMENTATION_SHIFT": "not confirmed"}
    row = table.set_index("finding").loc["AUGMENTATION_SHIFT"]
    assert row["reason"].startswith("final accuracy did not rise significantly (+0.000, p = 1")
    assert row["test"] == "exact McNemar"


def test_a_fix_whose_sibling_still_shows_the_finding_is_not_confirmed(tmp_path):
    mask = correct_mask(0.3, 1)
    before = group(tmp_path, "r", [mask], [("UNDER_TRAINED", "warning")])
    after = group(
        tmp_path,
        "r--fix-under_trained",
        [mask | correct_mask(0.6, 2)],
        [("UNDER_TRAINED", "warning")],
    )
    table = verify_fixes(plan(("UNDER_TRAINED", {"epochs": 24})), {"r": before, after.run: after})
    assert table["verdict"].tolist() == ["not confirmed"]
    assert "the finding is still in seeds [0]" in table["reason"].iloc[0]


def test_partial_validation_is_judged_by_how_much_the_curve_moves(tmp_path):
    mask = correct_mask(0.5, 1)
    jumpy = [0.2, 0.6, 0.3, 0.7, 0.4]
    before = group(tmp_path, "r", [mask], [("PARTIAL_VALIDATION", "warning")], val_accuracy=jumpy)
    calm = group(
        tmp_path, "r--fix-partial_validation", [mask], val_accuracy=np.linspace(0.3, 0.5, 5)
    )
    table = verify_fixes(
        plan(("PARTIAL_VALIDATION", {"validation_steps": None})), {"r": before, calm.run: calm}
    )
    row = table.iloc[0]
    assert row["verdict"] == "confirmed" and row["symptom"] == "curve_movement"
    assert row["symptom_before"] == np.abs(np.diff(jumpy)).mean()
    assert row["symptom_after"] < row["symptom_before"]


def test_a_fix_that_costs_accuracy_is_not_confirmed_even_when_the_finding_is_gone(tmp_path):
    mask = correct_mask(0.8, 1)
    before = group(tmp_path, "r", [mask], [("UNSTABLE_OPTIMIZATION", "warning")])
    worse = group(tmp_path, "r--fix-unstable_optimization", [mask & correct_mask(0.4, 2)])
    table = verify_fixes(
        plan(("UNSTABLE_OPTIMIZATION", {"learning_rate": 0.0001})), {"r": before, worse.run: worse}
    )
    assert table["verdict"].tolist() == ["not confirmed"]
    assert "accuracy fell significantly" in table["reason"].iloc[0]


def test_replicates_are_compared_with_the_seed_aware_test(tmp_path):
    masks = [correct_mask(0.3, k) for k in range(3)]
    before = group(tmp_path, "r", masks, [("PARTIAL_EPOCH", "critical")])
    after = group(
        tmp_path,
        "r--fix-partial_epoch",
        [m | correct_mask(0.6, 10 + k) for k, m in enumerate(masks)],
    )
    row = verify_fixes(
        plan(("PARTIAL_EPOCH", {"steps_per_epoch": None})), {"r": before, after.run: after}
    ).iloc[0]
    assert row["test"].startswith("seeds + images") and row["verdict"] == "confirmed"


def test_the_verification_files_say_confirmed_with_before_after_evidence(tmp_path):
    mask = correct_mask(0.3, 1)
    group(tmp_path, "r", [mask], [("PARTIAL_EPOCH", "critical")])
    group(tmp_path, "r--fix-partial_epoch", [mask | correct_mask(0.5, 2)])
    the_plan = plan(("PARTIAL_EPOCH", {"steps_per_epoch": None}))
    the_plan["not_verified"] = [{"code": "CLASS_IMBALANCE", "reason": "not a config change"}]
    (tmp_path / "fixes.json").write_text(json.dumps(the_plan))
    out = tmp_path / "out"
    verify_run_dirs(
        tmp_path / "fixes.json",
        [tmp_path / "r" / "seed-0", tmp_path / "r--fix-partial_epoch" / "seed-0"],
        markdown=out / "fixes.md",
        tsv=out / "fixes.tsv",
        curves=out / "fixes.png",
    )
    markdown = (out / "fixes.md").read_text()
    assert "## `PARTIAL_EPOCH`: **confirmed**" in markdown
    assert '`r` with `{"steps_per_epoch": null}`' in markdown
    assert "| final accuracy [95 % CI] | 0.300 [" in markdown
    assert "- `CLASS_IMBALANCE`: not a config change" in markdown
    assert pd.read_csv(out / "fixes.tsv", sep="\t")["verdict"].tolist() == ["confirmed"]
    assert (out / "fixes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
