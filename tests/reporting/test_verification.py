"""Verified fixes (simtrain.reporting.verification) on run folders with known outcomes: each
finding's own symptom test, fixes that cannot learn, non-inferiority, seed pairing, held-out
scoring of early stopping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.reporting.artifacts import verify_run_dirs
from simtrain.reporting.run_results import load_run
from simtrain.reporting.verification import RunGroup, verify_fixes
from tests.reporting.test_comparison import VALIDATION, correct_mask, write_run


def edit_diagnostics(run_dir: Path, change) -> None:
    path = run_dir / "diagnostics.json"
    diagnostics = json.loads(path.read_text())
    change(diagnostics)
    path.write_text(json.dumps(diagnostics))


def with_bn_gap(gap: float, se: float = 0.01):
    """An edit of a run folder: BatchNorm evidence with this gap (lag and shift)."""

    def change(diagnostics):
        evidence = {"lag_gap": gap, "lag_se": se, "shift_gap": gap, "shift_se": se}
        finding = {"code": "BATCHNORM_STATISTICS", "severity": "info", "evidence": evidence}
        diagnostics["findings"].append(finding)

    return lambda run_dir: edit_diagnostics(run_dir, change)


def with_movement(variance: float, epochs: int = 20):
    """An edit of a run folder: a curve with this per-epoch variance around its trend."""

    def change(diagnostics):
        diagnostics["fluctuation"] = {"variance_per_epoch": {"total": variance}}
        noise = {"code": "VALIDATION_SAMPLING_NOISE", "severity": "info"}
        diagnostics["findings"].append(noise | {"evidence": {"epochs": epochs}})

    return lambda run_dir: edit_diagnostics(run_dir, change)


def group(root: Path, run: str, masks, findings=(), edit=None, seed: int = 42) -> RunGroup:
    results = []
    for k, mask in enumerate(masks):
        run_dir = write_run(
            root, run, "small_cnn", mask, findings=findings, replicate=k, seed=seed + k
        )
        if edit is not None:
            edit(run_dir)
        results.append(load_run(run_dir))
    return RunGroup(run, results)


def plan(*codes_changes):
    fixes = [
        {"code": code, "severity": "warning", "change": change, "sibling": f"r--fix-{code.lower()}"}
        for code, change in codes_changes
    ]
    return {"run": "r", "fixes": fixes, "not_verified": []}


def verify(before: RunGroup, *siblings: RunGroup, codes_changes) -> pd.DataFrame:
    groups = {g.run: g for g in (before, *siblings)}
    return verify_fixes(plan(*codes_changes), groups).set_index("finding")


def test_a_fix_that_removes_the_finding_and_raises_accuracy_is_confirmed(tmp_path):
    before_mask = correct_mask(0.45, 1)
    before = group(tmp_path, "r", [before_mask], [("PARTIAL_EPOCH", "critical")])
    better = group(tmp_path, "r--fix-partial_epoch", [before_mask | correct_mask(0.5, 2)])
    row = verify(before, better, codes_changes=[("PARTIAL_EPOCH", {"steps_per_epoch": None})])
    row = row.loc["PARTIAL_EPOCH"]
    assert row["verdict"] == "confirmed", row["reason"]
    assert row["symptom"] == "accuracy (precise BN)" and row["symptom_p"] < 0.001
    assert row["non_inferiority_p"] < 0.05


def test_a_wrong_fix_that_changes_nothing_is_not_confirmed(tmp_path):
    mask = correct_mask(0.45, 1)
    before = group(tmp_path, "r", [mask], [("PARTIAL_EPOCH", "critical")])
    same = group(tmp_path, "r--fix-partial_epoch", [mask])
    row = verify(before, same, codes_changes=[("PARTIAL_EPOCH", {"learning_rate": 0.001})])
    row = row.loc["PARTIAL_EPOCH"]
    assert row["verdict"] == "not confirmed"
    assert "did not improve significantly" in row["reason"]


def test_a_sibling_that_learns_nothing_is_inconclusive_never_confirmed(tmp_path):
    # The case: 0.200 -> 0.200 with 5 classes, "confirmed" by a symptom that vanished.
    before = group(
        tmp_path,
        "r",
        [correct_mask(0.2, 1)],
        [("PARTIAL_VALIDATION", "warning")],
        edit=with_movement(0.02),
    )
    chance = group(
        tmp_path, "r--fix-partial_validation", [correct_mask(0.2, 2)], edit=with_movement(0.0001)
    )
    row = verify(before, chance, codes_changes=[("PARTIAL_VALIDATION", {"validation_steps": None})])
    row = row.loc["PARTIAL_VALIDATION"]
    assert row["verdict"] == "inconclusive"
    assert "accuracy not above chance" in row["reason"]


def test_a_sibling_still_under_trained_is_inconclusive(tmp_path):
    mask = correct_mask(0.5, 1)
    before = group(tmp_path, "r", [mask], [("UNDER_TRAINED", "warning")])
    after = group(
        tmp_path,
        "r--fix-under_trained",
        [mask | correct_mask(0.6, 2)],
        [("UNDER_TRAINED", "warning")],
    )
    row = verify(before, after, codes_changes=[("UNDER_TRAINED", {"epochs": 24})])
    assert row.loc["UNDER_TRAINED", "verdict"] == "inconclusive"


def test_partial_validation_is_judged_by_the_movement_it_claims(tmp_path):
    mask = correct_mask(0.7, 1)
    before = group(
        tmp_path, "r", [mask], [("PARTIAL_VALIDATION", "warning")], edit=with_movement(0.01)
    )
    calm = group(tmp_path, "r--fix-partial_validation", [mask], edit=with_movement(0.001))
    still = group(tmp_path, "r--fix-unexplained_fluctuation", [mask], edit=with_movement(0.009))
    table = verify(
        before,
        calm,
        still,
        codes_changes=[
            ("PARTIAL_VALIDATION", {"validation_steps": None}),
            ("UNEXPLAINED_FLUCTUATION", {"learning_rate": 0.001}),  # a wrong fix: no calmer
        ],
    )
    assert table.loc["PARTIAL_VALIDATION", "verdict"] == "confirmed"
    assert table.loc["PARTIAL_VALIDATION", "symptom_test"].startswith("F test (18, 18 df)")
    assert table.loc["UNEXPLAINED_FLUCTUATION", "verdict"] == "not confirmed"


def test_a_batchnorm_fix_must_shrink_the_gap_the_finding_measured(tmp_path):
    mask = correct_mask(0.7, 1)
    before = group(
        tmp_path, "r", [mask], [("BATCHNORM_STATISTICS", "warning")], edit=with_bn_gap(0.2)
    )
    fixed = group(tmp_path, "r--fix-batchnorm_statistics", [mask], edit=with_bn_gap(0.01))
    wrong = group(tmp_path, "r--fix-augmentation_shift", [mask], edit=with_bn_gap(0.19))
    table = verify(
        before,
        fixed,
        wrong,
        codes_changes=[
            ("BATCHNORM_STATISTICS", {"batchnorm_momentum": 0.9}),
            ("AUGMENTATION_SHIFT", {"label_smoothing": 0.1}),
        ],
    )
    assert table.loc["BATCHNORM_STATISTICS", "verdict"] == "confirmed"
    assert table.loc["AUGMENTATION_SHIFT", "verdict"] == "not confirmed"


def test_a_fix_that_costs_accuracy_is_not_confirmed_even_when_the_symptom_is_gone(tmp_path):
    mask = correct_mask(0.8, 1)
    before = group(
        tmp_path, "r", [mask], [("BATCHNORM_STATISTICS", "warning")], edit=with_bn_gap(0.2)
    )
    worse = group(
        tmp_path,
        "r--fix-batchnorm_statistics",
        [mask & correct_mask(0.85, 2)],
        edit=with_bn_gap(0.0),
    )
    row = verify(before, worse, codes_changes=[("BATCHNORM_STATISTICS", {"batch_size": 64})])
    row = row.loc["BATCHNORM_STATISTICS"]
    assert row["verdict"] == "not confirmed" and "not shown within 0.05" in row["reason"]


def spiky_batches(run_dir: Path, spikes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    steps = 5 * 40
    loss = 0.5 + 0.02 * rng.standard_normal(steps)
    loss[rng.choice(np.arange(40, steps), spikes, replace=False)] *= 6
    frame = pd.DataFrame(
        {
            "epoch": np.arange(steps) // 40 + 1,
            "batch": np.arange(steps) % 40,
            "step": np.arange(steps),
            "batch_size": 32,
            "loss": loss,
        }
    )
    frame.to_csv(run_dir / "batches.tsv", sep="\t", index=False)


def test_the_spike_rate_test_sees_fewer_spikes(tmp_path):
    from simtrain.reporting.symptoms import spikes_test

    mask = correct_mask(0.7, 1)
    before = group(tmp_path, "r", [mask], edit=lambda d: spiky_batches(d, 12, 1))
    calm = group(tmp_path, "calm", [mask], edit=lambda d: spiky_batches(d, 0, 2))
    test = spikes_test(before.replicates, calm.replicates)
    assert test.before > 0 and test.after == 0 and test.p_value < 0.001
    assert spikes_test(before.replicates, before.replicates).p_value > 0.4


def test_an_unstable_optimisation_fix_must_calm_the_curve(tmp_path):
    mask = correct_mask(0.7, 1)
    before = group(
        tmp_path, "r", [mask], [("UNSTABLE_OPTIMIZATION", "warning")], edit=with_movement(0.01)
    )
    calm = group(tmp_path, "r--fix-unstable_optimization", [mask], edit=with_movement(0.0005))
    row = verify(before, calm, codes_changes=[("UNSTABLE_OPTIMIZATION", {"learning_rate": 1e-3})])
    assert row.loc["UNSTABLE_OPTIMIZATION", "verdict"] == "confirmed"


def record(run_dir: Path, correct: np.ndarray, loss: np.ndarray) -> None:
    np.savez(
        run_dir / "validation_record.npz",
        correct=correct.astype(np.int8),
        loss=loss.astype(np.float32),
    )


def test_early_stopping_is_scored_on_images_that_did_not_choose_its_epoch(tmp_path):
    # The sibling's record: accuracy peaks at epoch 4 and falls after; the run ends low.
    epochs, rng = 10, np.random.default_rng(0)
    peak = np.array([0.5, 0.6, 0.7, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55])
    correct = rng.random((epochs, VALIDATION)) < peak[:, None]
    loss = np.where(correct, 0.2, 2.0) + 0.01 * rng.random((epochs, VALIDATION))
    last = correct[-1]
    before = group(tmp_path, "r", [last], [("OVERFITTING", "warning")])
    after = group(tmp_path, "r--fix-overfitting", [correct[3]])
    record(after.replicates[0].run_dir, correct, loss)
    row = verify(before, after, codes_changes=[("OVERFITTING", {"early_stopping": {}})])
    row = row.loc["OVERFITTING"]
    assert row["symptom"].startswith("held-out accuracy")
    assert row["symptom_after"] > row["symptom_before"] + 0.2
    assert row["verdict"] == "confirmed", row["reason"]


def test_siblings_pair_with_the_run_seed_by_seed(tmp_path):
    masks = [correct_mask(0.3, k) for k in range(3)]
    before = group(tmp_path, "r", masks, [("PARTIAL_EPOCH", "critical")])
    after = group(
        tmp_path,
        "r--fix-partial_epoch",
        [m | correct_mask(0.6, 10 + k) for k, m in enumerate(masks)],
    )
    row = verify(before, after, codes_changes=[("PARTIAL_EPOCH", {"steps_per_epoch": None})])
    row = row.loc["PARTIAL_EPOCH"]
    assert "paired by seed" in row["symptom_test"] and row["verdict"] == "confirmed"


def test_the_verification_files_say_confirmed_with_before_after_evidence(tmp_path):
    mask = correct_mask(0.45, 1)
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
    assert "| accuracy (precise BN) [95 % CI] | 0.450 [" in markdown
    assert "- `CLASS_IMBALANCE`: not a config change" in markdown
    assert pd.read_csv(out / "fixes.tsv", sep="\t")["verdict"].tolist() == ["confirmed"]
    assert (out / "fixes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
