"""Tests for simtrain.reporting.comparison on synthetic run folders with known accuracies."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simtrain.reporting.comparison import (
    check_same_images,
    compare_runs,
    learning_curve,
    main_finding,
)
from simtrain.reporting.comparison_markdown import write_comparison
from simtrain.reporting.run_results import load_run
from simtrain.reporting.statistics import compare_accuracy, mcnemar, wilson_interval

CLASSES = ["blobs", "lattice", "rings", "streaks", "grating"]
VALIDATION = 200  # 40 per class


def truth() -> np.ndarray:
    return np.repeat(np.arange(len(CLASSES)), VALIDATION // len(CLASSES))


def write_run(
    root: Path,
    run: str,
    model: str,
    correct: np.ndarray,
    *,
    train_images: int = 800,
    findings: list[tuple[str, str]] = (),
    index: np.ndarray | None = None,
    epochs: int = 5,
    replicate: int | None = None,
    seed: int | None = None,
) -> Path:
    """A run folder whose predictions are right exactly where `correct` is True (with
    `replicate`, the replicate's folder <run>/seed-<k>; with `seed`, the training seed that
    metrics.json records)."""
    run_dir = root / run if replicate is None else root / run / f"seed-{replicate}"
    run_dir.mkdir(parents=True)
    true = truth()
    predicted = np.where(correct, true, (true + 1) % len(CLASSES))
    probabilities = np.full((VALIDATION, len(CLASSES)), 0.1)
    probabilities[np.arange(VALIDATION), predicted] = 0.6
    predictions = pd.DataFrame(
        {
            "index": np.arange(VALIDATION) if index is None else index,
            "true": [CLASSES[i] for i in true],
            "predicted": [CLASSES[i] for i in predicted],
            "loss": -np.log(probabilities[np.arange(VALIDATION), true]),
        }
    )
    for i, name in enumerate(CLASSES):
        predictions[f"p_{name}"] = probabilities[:, i]
    predictions.to_csv(run_dir / "predictions.tsv", sep="\t", index=False)
    rows = 1 if model == "baseline" else epochs
    history = pd.DataFrame(
        {
            "epoch": np.arange(1, rows + 1),
            "loss": np.linspace(1.5, 0.5, rows),
            "accuracy": np.linspace(0.3, 0.9, rows),
            "val_loss": np.linspace(1.5, 0.7, rows),
            "val_accuracy": np.linspace(0.3, correct.mean(), rows),
            "learning_rate": 0.001,
        }
    )
    history.to_csv(run_dir / "history.tsv", sep="\t", index=False)
    timing = pd.DataFrame(
        {"epoch": history["epoch"], "seconds": 2.0, "images_per_second": train_images / 2.0}
    )
    timing.to_csv(run_dir / "timing.tsv", sep="\t", index=False)
    metrics = {
        "run": run,
        **({} if replicate is None else {"replicate": replicate}),
        **({} if seed is None else {"seed": seed}),
        "model": model,
        "train_images": train_images,
        "validation_images": VALIDATION,
        "epochs": rows,
        "final_val_accuracy": float(correct.mean()),
        "best_val_accuracy": float(correct.mean()) + 0.01,
        "best_epoch": rows,
        "seconds": 2.0 * rows,
        "images_per_second": train_images / 2.0,
        **({"seed_independent": True} if model == "baseline" else {}),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    diagnostics = {
        "run": run,
        "fluctuation_score": 1.2,
        "findings": [{"code": c, "severity": s, "title": c.lower()} for c, s in findings],
    }
    (run_dir / "diagnostics.json").write_text(json.dumps(diagnostics))
    return run_dir


def correct_mask(accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(VALIDATION, dtype=bool)
    mask[rng.choice(VALIDATION, round(accuracy * VALIDATION), replace=False)] = True
    return mask


@pytest.fixture
def runs(tmp_path: Path) -> list:
    baseline = correct_mask(0.40, seed=1)
    better = baseline | correct_mask(0.6, seed=2)  # right wherever the baseline is, and more
    return [
        load_run(write_run(tmp_path, "hog", "baseline", baseline)),
        load_run(
            write_run(
                tmp_path,
                "small_cnn",
                "small_cnn",
                better,
                findings=[("VALIDATION_SAMPLING_NOISE", "info"), ("STABLE", "info")],
            )
        ),
        load_run(
            write_run(
                tmp_path,
                "resnet50",
                "resnet50",
                baseline.copy(),
                findings=[("STABLE", "info"), ("OVERFITTING", "warning"), ("PARTIAL", "critical")],
            )
        ),
    ]


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="correct <= n"):
        wilson_interval(11, 10)


def test_mcnemar_counts_discordant_pairs_and_gives_exact_p():
    a = np.array([True] * 10 + [False] * 2 + [True] * 5 + [False] * 3)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5 + [False] * 3)
    b_count, c_count, p_value = mcnemar(a, b)
    assert (b_count, c_count) == (10, 2)
    assert p_value == pytest.approx(158 / 4096)  # 2 * P(X <= 2), X ~ Binomial(12, 1/2)


def test_mcnemar_without_discordant_pairs_has_p_one():
    same = np.array([True, False, True])
    assert mcnemar(same, same) == (0, 0, 1.0)


def test_runs_scored_on_different_images_are_not_compared_and_both_are_named(tmp_path: Path):
    mask = correct_mask(0.5, seed=0)
    first = load_run(write_run(tmp_path, "first", "small_cnn", mask))
    shifted = load_run(write_run(tmp_path, "second", "small_cnn", mask, index=np.arange(1, 201)))
    with pytest.raises(ValueError, match="'first' and 'second'"):
        check_same_images(first, shifted)
    with pytest.raises(ValueError, match="'second' and 'first'"):
        compare_runs([first, shifted], baseline="first")  # the run, then the baseline


def test_a_clearly_better_run_beats_the_baseline_and_an_equal_one_does_not(runs):
    table = compare_runs(runs, baseline=None).set_index("run")
    assert table.loc["small_cnn", "beats_baseline"] == "yes"
    assert table.loc["small_cnn", "p_value"] < 0.001
    assert table.loc["resnet50", "beats_baseline"] == "no"
    assert table.loc["resnet50", "p_value"] == 1.0
    assert table.loc["hog", "beats_baseline"] == ""
    assert math.isnan(table.loc["hog", "p_value"])


def test_comparison_reports_chance_interval_and_main_finding(runs):
    table = compare_runs(runs, baseline=None).set_index("run")
    assert (table["chance"] == 0.2).all()
    assert (table["majority_rate"] == 0.2).all()
    assert table.loc["hog", "final_val_accuracy"] == pytest.approx(0.40)
    low, high = wilson_interval(80, 200)
    assert table.loc["hog", ["final_ci_low", "final_ci_high"]].tolist() == pytest.approx(
        [low, high]
    )
    assert table.loc["resnet50", "main_finding"] == "PARTIAL"
    assert table.loc["small_cnn", "main_finding"] == "STABLE"
    assert table.loc["hog", "main_finding"] == ""
    assert table.loc["small_cnn", "training_seconds"] == 10.0


def test_named_baseline_is_used_and_unknown_name_fails(runs):
    table = compare_runs(runs, baseline="resnet50").set_index("run")
    assert table.loc["resnet50", "beats_baseline"] == ""
    assert table.loc["hog", "beats_baseline"] == "no"
    with pytest.raises(ValueError, match="'nonexistent'"):
        compare_runs(runs, baseline="nonexistent")


def test_without_a_baseline_run_no_run_is_tested(runs):
    table = compare_runs(runs[1:], baseline=None)
    assert (table["beats_baseline"] == "").all()


def test_main_finding_prefers_the_most_severe():
    findings = [
        {"code": "A", "severity": "info"},
        {"code": "B", "severity": "warning"},
        {"code": "C", "severity": "warning"},
    ]
    assert main_finding({"findings": findings}) == "B"
    assert main_finding(None) == ""


def test_an_info_finding_is_no_main_finding_but_a_calm_curve_is_stable():
    # "BatchNorm statistics match the weights" is a check that found nothing wrong.
    calm = [
        {"code": "BATCHNORM_STATISTICS", "severity": "info"},
        {"code": "STABLE", "severity": "info"},
    ]
    assert main_finding({"findings": calm}) == "STABLE"
    assert main_finding({"findings": calm[:1]}) == ""


def test_the_main_finding_is_the_cause_before_what_it_explains():
    def main(*codes):
        return main_finding({"findings": [{"code": c, "severity": "warning"} for c in codes]})

    assert main("UNDER_TRAINED", "OVERFITTING") == "OVERFITTING"
    assert main("UNDER_TRAINED", "UNSTABLE_OPTIMIZATION") == "UNSTABLE_OPTIMIZATION"
    assert main("BATCHNORM_STATISTICS", "UNDER_TRAINED") == "UNDER_TRAINED"
    assert main("BATCHNORM_STATISTICS", "AUGMENTATION_SHIFT") == "AUGMENTATION_SHIFT"


def test_markdown_names_every_run_and_calls_out_chance_level(tmp_path: Path, runs):
    chance_run = load_run(write_run(tmp_path, "guessing", "small_cnn", correct_mask(0.22, 3)))
    table = compare_runs([*runs, chance_run], baseline=None)
    write_comparison(table, tmp_path / "comparison.tsv", tmp_path / "comparison.md")
    markdown = (tmp_path / "comparison.md").read_text()
    for run in ("hog", "small_cnn", "resnet50", "guessing"):
        assert f"`{run}`" in markdown
    assert "beats the baseline (exact McNemar p<0.001; one seed: training variance unknown)" in (
        markdown
    )
    assert "`guessing`" in markdown.split("Not distinguishable from chance:**")[1].split(".")[0]
    assert "How to read this" in markdown


def test_an_under_trained_run_near_chance_is_inconclusive_not_indistinguishable(
    tmp_path: Path, runs
):
    mask = correct_mask(0.22, 3)
    short = write_run(tmp_path, "short", "resnet50", mask, findings=[("UNDER_TRAINED", "warning")])
    guessing = write_run(tmp_path, "guessing", "small_cnn", mask)
    table = compare_runs([*runs, load_run(short), load_run(guessing)], baseline=None)
    assert table.set_index("run").loc["short", "under_trained"] == "yes"
    write_comparison(table, tmp_path / "comparison.tsv", tmp_path / "comparison.md")
    markdown = (tmp_path / "comparison.md").read_text()
    not_distinguishable = markdown.split("Not distinguishable from chance:**")[1].split(".")[0]
    assert "`guessing`" in not_distinguishable and "`short`" not in not_distinguishable
    assert "**Inconclusive (under-trained):** `short`." in markdown
    assert "`short` (resnet50" in markdown and "inconclusive (under-trained)" in markdown


def test_written_tsv_reads_back_with_every_column(tmp_path: Path, runs):
    table = compare_runs(runs, baseline=None)
    write_comparison(table, tmp_path / "comparison.tsv", tmp_path / "comparison.md")
    back = pd.read_csv(tmp_path / "comparison.tsv", sep="\t", keep_default_na=False)
    assert list(back.columns) == list(table.columns)
    assert back["run"].tolist() == ["hog", "small_cnn", "resnet50"]
    assert "0.4\t" in (tmp_path / "comparison.tsv").read_text()


def test_rewriting_the_comparison_gives_identical_bytes(tmp_path: Path, runs):
    paths = [tmp_path / "comparison.tsv", tmp_path / "comparison.md"]
    write_comparison(compare_runs(runs, baseline=None), *paths)
    first = [path.read_bytes() for path in paths]
    reloaded = [load_run(run.run_dir) for run in runs]
    write_comparison(compare_runs(reloaded, baseline=None), *paths)
    assert [path.read_bytes() for path in paths] == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted(
        p.name for p in paths
    )


def test_load_run_tolerates_missing_optional_files(tmp_path: Path):
    run_dir = write_run(tmp_path, "hog", "baseline", correct_mask(0.4, 0))
    for name in ("diagnostics.json", "timing.tsv", "history.tsv"):
        (run_dir / name).unlink()
    result = load_run(run_dir)
    assert result.batches is None and result.diagnostics is None and result.history is None
    row = compare_runs([result], baseline=None).iloc[0]
    assert row["main_finding"] == "" and math.isnan(row["fluctuation_score"])


def test_load_run_requires_metrics(tmp_path: Path):
    with pytest.raises(ValueError, match="metrics.json"):
        load_run(tmp_path)


def test_learning_curve_keeps_models_with_several_training_sizes(tmp_path: Path, runs):
    extra = [
        load_run(write_run(tmp_path, f"cnn_{n}", "small_cnn", correct_mask(0.5, n), train_images=n))
        for n in (100, 400)
    ]
    points = learning_curve(compare_runs([*runs, *extra], baseline=None))
    assert points["model"].unique().tolist() == ["small_cnn"]
    assert points["train_images"].tolist() == [100, 400, 800]
    assert learning_curve([*runs, *extra])["run"].tolist() == points["run"].tolist()


def replicates(tmp_path: Path, run: str, accuracies: list[float], seed: int = 10) -> list:
    return [
        load_run(write_run(tmp_path, run, "small_cnn", correct_mask(a, seed + k), replicate=k))
        for k, a in enumerate(accuracies)
    ]


def test_replicates_make_one_row_with_their_mean_and_a_seed_aware_interval(tmp_path, runs):
    table = compare_runs([*runs, *replicates(tmp_path, "cnn", [0.70, 0.75, 0.65])])
    row = table.set_index("run").loc["cnn"]
    assert row["seeds"] == 3 and row["seed_accuracies"] == "0.700 0.750 0.650"
    assert row["final_val_accuracy"] == pytest.approx(0.70)
    assert row["seed_sd"] == pytest.approx(0.05)
    # Wider than the one-seed Wilson interval of 0.70 on 200 images: the seeds vary.
    low, high = wilson_interval(140, 200)
    assert row["final_ci_low"] < low and row["final_ci_high"] > high
    assert row["interval"].startswith("3 seeds + images")
    assert table.set_index("run").loc["hog", "interval"] == "Wilson, 1 seed: images only"


def test_beating_the_baseline_counts_the_seed_to_seed_variance(tmp_path, runs):
    # Seed 1 alone is far better than the baseline (0.40), but the seeds disagree wildly.
    erratic = replicates(tmp_path, "erratic", [0.35, 0.95, 0.40])
    # Right wherever the baseline is, and on 30-34 more images: every seed clearly better.
    base = runs[0].correct
    steady = [
        load_run(write_run(tmp_path, "steady", "small_cnn", base | mask, replicate=k))
        for k, mask in enumerate(correct_mask(0.25 + 0.01 * k, 20 + k) for k in range(3))
    ]
    table = compare_runs([*runs, *erratic, *steady]).set_index("run")
    assert compare_runs([runs[0], erratic[1]]).iloc[1]["beats_baseline"] == "yes"
    assert table.loc["erratic", "beats_baseline"] == "no"
    assert table.loc["steady", "beats_baseline"] == "yes"
    assert table.loc["steady", "test"].startswith("seeds + images")


def test_repeated_replicate_numbers_are_rejected(tmp_path):
    first = replicates(tmp_path / "a", "cnn", [0.5])
    second = replicates(tmp_path / "b", "cnn", [0.6])
    with pytest.raises(ValueError, match="'cnn': replicate numbers repeat"):
        compare_runs([*first, *second])


def test_a_replicate_folder_names_its_run_and_number(tmp_path):
    run_dir = write_run(tmp_path, "cnn", "small_cnn", correct_mask(0.5, 0), replicate=2)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    del metrics["run"], metrics["replicate"]
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    result = load_run(run_dir)
    assert (result.run, result.replicate) == ("cnn", 2)


def test_markdown_says_a_single_seed_ignores_training_variance(tmp_path, runs):
    write_comparison(compare_runs(runs), tmp_path / "c.tsv", tmp_path / "c.md")
    assert (
        "one seed gets a Wilson interval over the images only: it ignores training variance"
        in (tmp_path / "c.md").read_text()
    )


def test_beating_the_baseline_is_decided_on_holm_adjusted_p_values(tmp_path, runs):
    """Three runs each right on the baseline's images and 6 more: exact McNemar p = 2 / 2^6
    = 0.031 each, below 0.05, but 3 tests in one table: Holm-adjusted 0.094."""
    base = runs[0].correct
    extra = [np.flatnonzero(~base)[6 * k : 6 * k + 6] for k in range(3)]
    masks = [base.copy() for _ in extra]
    for mask, images in zip(masks, extra):
        mask[images] = True
    better = [
        load_run(write_run(tmp_path, f"plus6_{k}", "small_cnn", m)) for k, m in enumerate(masks)
    ]
    table = compare_runs([runs[0], *better]).set_index("run")
    tested = table.loc[[f"plus6_{k}" for k in range(3)]]
    assert tested["p_value"].tolist() == pytest.approx([2 / 2**6] * 3)
    assert tested["p_holm"].tolist() == pytest.approx([3 * 2 / 2**6] * 3)
    assert (tested["beats_baseline"] == "no").all()
    alone = compare_runs([runs[0], better[0]]).set_index("run").loc["plus6_0"]
    assert alone["beats_baseline"] == "yes" and alone["p_holm"] == alone["p_value"]


def test_a_sibling_trained_with_the_same_seeds_is_compared_seed_by_seed(tmp_path, runs):
    def group(run, offset, seeds):
        masks = [runs[0].correct | correct_mask(0.3 + 0.02 * (s % 10) - offset, s) for s in seeds]
        return [
            load_run(write_run(tmp_path, run, "small_cnn", m, replicate=k, seed=s))
            for k, (m, s) in enumerate(zip(masks, seeds))
        ]

    parent = group("cnn", 0.0, [42, 43, 44])
    sibling = group("cnn--fix-x", 0.05, [44, 42, 43])  # seeds recorded out of replicate order
    other_seeds = group("other", 0.05, [7, 8, 9])
    table = compare_runs([*parent, *sibling, *other_seeds], baseline="cnn").set_index("run")
    assert table.loc["cnn--fix-x", "test"].startswith("seeds + images, paired by seed")
    assert table.loc["other", "test"] == "seeds + images, unpaired (MOVER)"
    parent_correct = np.stack([r.correct for r in parent])
    sibling_correct = np.stack([r.correct for r in sibling])[[1, 2, 0]]  # seeds 42, 43, 44
    expected = compare_accuracy(sibling_correct, parent_correct, paired=True)
    assert table.loc["cnn--fix-x", "p_value"] == pytest.approx(expected.p_value)


def test_one_seed_verdicts_say_the_training_variance_is_unknown(tmp_path, runs):
    table = compare_runs([*runs, *replicates(tmp_path, "cnn", [0.70, 0.75, 0.65])])
    assert table.set_index("run")["training_variance"].to_dict() == {
        "hog": "unknown",
        "small_cnn": "unknown",
        "resnet50": "unknown",
        "cnn": "measured",
    }
    write_comparison(table, tmp_path / "c.tsv", tmp_path / "c.md")
    markdown = (tmp_path / "c.md").read_text()
    [small_cnn] = [line for line in markdown.splitlines() if line.startswith("- `small_cnn`")]
    assert "above chance (one seed: training variance unknown)" in small_cnn
    assert "beats the baseline (" in small_cnn and small_cnn.count("training variance unknown") == 2
    [cnn] = [line for line in markdown.splitlines() if line.startswith("- `cnn`")]
    assert "training variance unknown" not in cnn
    [row] = [line for line in markdown.splitlines() if line.startswith("| `small_cnn` |")]
    assert "| unknown | yes |" in row


def add_precise_bn(run_dir: Path, correct: np.ndarray) -> None:
    """predictions_precise_bn.tsv right exactly where `correct` is True."""
    predictions = pd.read_csv(run_dir / "predictions.tsv", sep="\t")
    true = truth()
    predicted = np.where(correct, true, (true + 1) % len(CLASSES))
    predictions["predicted"] = [CLASSES[i] for i in predicted]
    predictions.to_csv(run_dir / "predictions_precise_bn.tsv", sep="\t", index=False)


def test_the_comparison_decides_on_precise_bn_and_shows_the_last_epoch_beside_it(tmp_path):
    # The default: three seeds whose last epochs land at 0.72 / 0.965 / 0.895 while
    # the same weights with precise BN statistics score 0.915 / 0.97 / 0.9.
    dirs = [write_run(tmp_path, "hog", "baseline", correct_mask(0.715, 99))]
    for k, (last, precise) in enumerate([(0.72, 0.915), (0.965, 0.97), (0.895, 0.9)]):
        run_dir = write_run(
            tmp_path, "cnn", "small_cnn", correct_mask(last, k), replicate=k, seed=42 + k
        )
        add_precise_bn(run_dir, correct_mask(precise, 10 + k))
        dirs.append(run_dir)
    table = compare_runs([load_run(d) for d in dirs]).set_index("run")
    cnn = table.loc["cnn"]
    assert cnn["measure"] == "precise BN"
    assert cnn["accuracy"] == pytest.approx((0.915 + 0.97 + 0.9) / 3, abs=1e-3)
    assert cnn["final_val_accuracy"] == pytest.approx((0.72 + 0.965 + 0.895) / 3, abs=1e-3)
    assert cnn["seed_accuracies"] == "0.915 0.970 0.900"
    assert cnn["final_seed_accuracies"] == "0.720 0.965 0.895"
    assert cnn["beats_baseline"] == "yes" and cnn["p_holm"] < 0.05
    assert "paired by seed" in cnn["test"]  # the baseline trains one model whatever its seed
    assert cnn["seed_instability"] == (
        "yes: BATCHNORM_STATISTICS (precise BN statistics remove the spread)"
    )
    # The baseline has no BatchNorm: its accuracy is its final model's.
    assert table.loc["hog", "accuracy"] == table.loc["hog", "final_val_accuracy"]


def test_seeds_that_agree_are_stable_and_a_spread_precise_bn_keeps_has_no_named_cause(tmp_path):
    from simtrain.reporting.run_summary import seed_effect, seed_instability

    calm = np.stack([correct_mask(0.8, k) for k in range(3)])
    spread, p_value = seed_effect(calm)
    assert spread < 0.03 or p_value >= 0.01
    assert seed_instability(calm, calm) == ""
    wide = np.stack([correct_mask(a, k) for k, a in enumerate([0.6, 0.9, 0.75])])
    assert seed_instability(wide, wide) == "yes: cause unknown"
    assert seed_instability(wide[:1], wide[:1]) == ""  # one seed: nothing to compare
