"""The whole workflow on a tiny config: data, training, diagnostics, comparison, report.

Every test reads the session's finished tiny workflow (tests/conftest.py) and changes nothing
in it; the report is written outside it.
"""

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import binomtest

from simtrain.common.runs import apply_change
from simtrain.reporting.statistics import accuracy_interval, compare_accuracy, holm
from tests.conftest import (
    FINISHED_RUNS,
    TINY_CONFIG,
    job_counts,
    replicate_dirs,
    seed_dir,
    unavailable,
)

RUN_ARTIFACTS = [
    "history.tsv",
    "predictions.tsv",
    "metrics.json",
    "diagnostics.json",
    "diagnostics.md",
    "curves.png",
    "confusion.png",
    "config.resolved.yaml",
]
# Per run, the files the report shows (the rule files mark them with report()).
REPORTED_RUN_FILES = ["curves.png", "batches.png", "confusion.png", "diagnostics.md"]
REPORTED_COMPARISON = [
    "comparison.tsv",
    "plots/validation_accuracy.png",
    "plots/best_accuracy.png",
    "plots/learning_curve.png",
]


def codes(results, run) -> set[str]:
    diagnostics = json.loads((results / seed_dir(run) / "diagnostics.json").read_text())
    return {finding["code"] for finding in diagnostics["findings"]}


def fix_plan(results) -> dict:
    return json.loads((results / "runs/cnn_partial/fixes.json").read_text())


def robust(results, folder):
    """Right/wrong per image under the decision measure: precise BN where the run has it."""
    path = results / folder / "predictions_precise_bn.tsv"
    if not path.exists():
        return correct(results, folder)
    predictions = pd.read_csv(path, sep="\t")
    return (predictions["true"] == predictions["predicted"]).to_numpy()


def correct(results, folder):
    predictions = pd.read_csv(results / folder / "predictions.tsv", sep="\t")
    return (predictions["true"] == predictions["predicted"]).to_numpy()


def test_every_replicate_has_its_artifacts(finished_workflow):
    results = finished_workflow.results
    for folder in replicate_dirs():
        for name in RUN_ARTIFACTS:
            assert (results / folder / name).stat().st_size > 0, f"{folder}/{name}"
    assert (results / "runs/cnn/seed-1/model.keras").exists()
    assert (results / "runs/cnn/seed-1/precise_bn.keras").exists()
    saved = sorted(p.name for p in (results / "runs/cnn/seed-1/epochs").glob("epoch-*"))
    assert saved[0] == "epoch-001.weights.h5"
    assert (results / "benchmarks/train/cnn/seed-1.tsv").exists()


def test_replicates_train_with_successive_seeds_and_differ(finished_workflow):
    results = finished_workflow.results
    metrics = [
        json.loads((results / seed_dir("cnn", k) / "metrics.json").read_text()) for k in (0, 1)
    ]
    assert [(m["replicate"], m["seed"]) for m in metrics] == [(0, 7), (1, 8)]
    histories = [(results / seed_dir("cnn", k) / "history.tsv").read_text() for k in (0, 1)]
    assert histories[0] != histories[1]
    table = pd.read_csv(results / "comparison.tsv", sep="\t").set_index("run")
    last = np.stack([correct(results, seed_dir("cnn", k)) for k in (0, 1)])
    decided = np.stack([robust(results, seed_dir("cnn", k)) for k in (0, 1)])
    assert table.loc["cnn", "seeds"] == 2
    assert table.loc["cnn", "final_val_accuracy"] == pytest.approx(last.mean(), abs=1e-4)
    assert table.loc["cnn", "accuracy"] == pytest.approx(decided.mean(), abs=1e-4)
    assert table.loc["cnn", "measure"] == "precise BN"
    assert table.loc["cnn", "interval"] == accuracy_interval(decided).method


def test_each_verifiable_finding_trained_a_sibling_with_exactly_its_change(finished_workflow):
    results = finished_workflow.results
    plan = fix_plan(results)
    assert "PARTIAL_EPOCH" in [fix["code"] for fix in plan["fixes"]]
    parent = yaml.safe_load(
        (results / seed_dir("cnn_partial") / "config.resolved.yaml").read_text()
    )
    for fix in plan["fixes"]:
        sibling = yaml.safe_load(
            (results / seed_dir(fix["sibling"]) / "config.resolved.yaml").read_text()
        )
        expected = apply_change(parent["runs"]["cnn_partial"], fix["change"])
        assert sibling["runs"][fix["sibling"]] == expected, fix["code"]
        assert fix["code"] not in codes(results, fix["sibling"]) or fix["code"] == "UNDER_TRAINED"


def test_fixes_md_gives_a_verdict_and_evidence_for_every_sibling(finished_workflow):
    results = finished_workflow.results
    plan = fix_plan(results)
    markdown = (results / "runs/cnn_partial/fixes.md").read_text()
    table = pd.read_csv(results / "runs/cnn_partial/fixes.tsv", sep="\t")
    assert table["sibling"].tolist() == [fix["sibling"] for fix in plan["fixes"]]
    for _, row in table.iterrows():
        assert f"## `{row['finding']}`: **{row['verdict']}**" in markdown
        assert row["verdict"] in ("confirmed", "not confirmed", "inconclusive")
        # A sibling that did not learn is never confirmed.
        assert row["learned"] == "yes" or row["verdict"] == "inconclusive"
        assert row["non_inferiority_margin"] == 0.05 and 0 <= row["non_inferiority_p"] <= 1
    comparison = (results / "comparison.md").read_text()
    assert "## Verified fixes" in comparison
    for fix in plan["fixes"]:
        assert f"| `{fix['sibling']}` |" in comparison
        assert f"| `cnn_partial` | `{fix['code']}` |" in comparison


def test_partial_epochs_are_diagnosed_and_full_coverage_is_not(finished_workflow):
    results = finished_workflow.results
    assert {"PARTIAL_EPOCH", "PARTIAL_VALIDATION"} <= codes(results, "cnn_partial")
    assert not {"PARTIAL_EPOCH", "PARTIAL_VALIDATION"} & codes(results, "cnn")


def test_comparison_accuracies_are_those_of_each_runs_predictions(finished_workflow):
    results = finished_workflow.results
    table = pd.read_csv(results / "comparison.tsv", sep="\t").set_index("run")
    siblings = [fix["sibling"] for fix in fix_plan(results)["fixes"]]
    assert table.index.tolist() == [*FINISHED_RUNS, *siblings]
    for run in ["cnn_partial", "base", *siblings]:
        predictions = pd.read_csv(results / seed_dir(run) / "predictions.tsv", sep="\t")
        accuracy = (predictions["true"] == predictions["predicted"]).mean()
        assert table.loc[run, "final_val_accuracy"] == pytest.approx(accuracy, abs=1e-4), run
        assert table.loc[run, "validation_images"] == len(predictions)


def test_beats_baseline_follows_the_paired_test_on_the_same_images(finished_workflow):
    results = finished_workflow.results
    table = pd.read_csv(results / "comparison.tsv", sep="\t", keep_default_na=False)
    table = table.set_index("run")

    baseline = correct(results, seed_dir("base"))
    assert table.loc["base", "beats_baseline"] == ""  # the baseline is not compared to itself
    deep = robust(results, seed_dir("cnn_partial"))
    only_deep, only_base = int((deep & ~baseline).sum()), int((~deep & baseline).sum())
    discordant = only_deep + only_base
    p = binomtest(only_deep, discordant).pvalue if discordant else 1.0
    assert float(table.loc["cnn_partial", "p_value"]) == pytest.approx(p, abs=1e-3)
    assert table.loc["cnn_partial", "test"] == "exact McNemar"
    # The decision uses the Holm-adjusted p over the report's tests: the baseline tests and
    # the verified fixes' symptom tests.
    tested = table[table["beats_baseline"] != ""]
    fixes = pd.read_csv(results / "runs/cnn_partial/fixes.tsv", sep="\t")
    family = tested["p_value"].astype(float).tolist() + fixes["symptom_p"].tolist()
    adjusted = holm(family)[: len(tested)]
    assert tested["p_holm"].astype(float).tolist() == pytest.approx(adjusted, rel=2e-3)
    holm_p = float(table.loc["cnn_partial", "p_holm"])
    expected = "yes" if deep.mean() > baseline.mean() and holm_p < 0.05 else "no"
    assert table.loc["cnn_partial", "beats_baseline"] == expected
    # Two seeds against a baseline that trains one model whatever its seed: paired by seed.
    seeds = np.stack([robust(results, seed_dir("cnn", k)) for k in (0, 1)])
    outcome = compare_accuracy(seeds, np.stack([baseline, baseline]), paired=True)
    assert float(table.loc["cnn", "p_value"]) == pytest.approx(outcome.p_value, abs=1e-3)
    assert table.loc["cnn", "test"] == outcome.test


def test_comparison_markdown_has_one_row_per_run_with_its_main_finding(finished_workflow):
    results = finished_workflow.results
    markdown = (results / "comparison.md").read_text().split("## How to read this")[0]
    table = pd.read_csv(results / "comparison.tsv", sep="\t").set_index("run")
    for run in FINISHED_RUNS:
        [row] = [line for line in markdown.splitlines() if line.startswith(f"| `{run}` |")]
        assert f"| {FINISHED_RUNS[run]['model']} |" in row
        finding = table.loc[run, "main_finding"]
        if isinstance(finding, str):
            assert f"| {finding} |" in row, row


def test_resolved_config_reproduces_the_run(finished_workflow):
    resolved = yaml.safe_load(
        (finished_workflow.results / seed_dir("cnn") / "config.resolved.yaml").read_text()
    )
    assert resolved["runs"]["cnn"]["seed"] == TINY_CONFIG["seed"]
    configured = FINISHED_RUNS["cnn"]["augmentation"]
    assert configured.items() <= resolved["runs"]["cnn"]["augmentation"].items()
    assert resolved["classes"] == TINY_CONFIG["classes"]


@pytest.fixture(scope="module")
def report(finished_workflow, tmp_path_factory):
    """`snakemake --report` of the finished workflow, written outside it."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    finished_workflow.run("--report", str(path))
    return path


def embedded_results(report_html: str) -> dict:
    """The files the report embeds: path -> {caption, mime_type, data_uri, ...}."""
    match = re.search(
        r'<script id="results">\s*var results = (.*?);\s*</script>', report_html, re.S
    )
    assert match, "the report has no embedded results"
    return json.loads(match[1])


def embedded_bytes(entry: dict) -> bytes:
    header, _, data = entry["data_uri"].partition(",")
    assert header.endswith(";base64"), header
    return base64.b64decode(data)


def test_report_embeds_every_runs_figures_and_diagnostics_unchanged(finished_workflow, report):
    embedded = embedded_results(report.read_text())
    siblings = [fix["sibling"] for fix in fix_plan(finished_workflow.results)["fixes"]]
    folders = replicate_dirs() + [seed_dir(sibling) for sibling in siblings]
    for folder in folders:
        for name in REPORTED_RUN_FILES:
            key = f"results/{folder}/{name}"
            assert key in embedded, f"{key} is missing from the report"
            on_disk = (finished_workflow.workdir / key).read_bytes()
            assert embedded_bytes(embedded[key]) == on_disk, key
    partial = embedded["results/runs/cnn_partial/seed-0/diagnostics.md"]
    diagnostics = embedded_bytes(partial).decode()
    assert "PARTIAL_EPOCH" in diagnostics and "PARTIAL_VALIDATION" in diagnostics
    for name in ("fixes.md", "fixes.png"):
        key = f"results/runs/cnn_partial/{name}"
        on_disk = (finished_workflow.workdir / key).read_bytes()
        assert embedded_bytes(embedded[key]) == on_disk, key


def test_report_embeds_the_comparison_and_the_sample_grids(finished_workflow, report):
    embedded = embedded_results(report.read_text())
    for name in [*REPORTED_COMPARISON, "samples/train.png", "samples/validation.png"]:
        key = f"results/{name}"
        assert key in embedded, f"{key} is missing from the report"
        assert embedded_bytes(embedded[key]) == (finished_workflow.workdir / key).read_bytes()
        assert embedded[key]["caption"].strip(), f"{key} has no caption"


# Clicks the menu entries whose text is each of `clicks`, half a second apart, in the page.
CLICK_SCRIPT = """<script>
function clickText(text) {
  const hits = [...document.querySelectorAll("a,button,li,span,div,td,tr")]
    .filter((element) => element.textContent.trim() === text);
  if (hits.length) hits[hits.length - 1].click();
}
CLICKS.forEach((text, i) => setTimeout(() => clickText(text), 500 * (i + 1)));
</script>"""


def rendered_text(report, clicks: list[str], tmp_path) -> str:
    """The visible text of the report after headless Chromium has run its scripts and
    clicked through `clicks` (the report is a script-built app without URLs per page)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        unavailable("headless Chromium is not installed (.ci/run installs Debian's chromium)")
    html = report.read_text()
    script = CLICK_SCRIPT.replace("CLICKS", json.dumps(clicks))
    end = html.rindex("</body>")
    page = tmp_path / "clicked.html"
    page.write_text(html[:end] + script + html[end:])
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    body = re.sub(r"<script\b.*?</script>", "", dom[dom.find("<body") :], flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def test_rendered_report_lists_every_run(report, tmp_path):
    text = rendered_text(report, ["Runs"], tmp_path)
    for run in FINISHED_RUNS:
        assert f" {run} " in text, f"the rendered report lists no run {run!r}"


@pytest.mark.parametrize("run", ["cnn", "cnn_partial"])
def test_rendered_report_shows_a_runs_figures_and_diagnostics(report, tmp_path, run):
    text = rendered_text(report, ["Runs", run], tmp_path)
    # A run's page is a table of its files, labelled by replicate and kind.
    assert " replicate file " in text
    for replicate in range(FINISHED_RUNS[run].get("repeats", 1)):
        for name in REPORTED_RUN_FILES:
            label = f"seed-{replicate} {name.split('.')[0]}"
            assert f" {label} " in text, f"{run}: {label} is not shown"


def test_rendered_report_shows_the_comparison(report, tmp_path):
    text = rendered_text(report, ["Comparison"], tmp_path)
    for name in REPORTED_COMPARISON:
        assert f"results/{name}" in text, f"{name} is not shown"


def dry_run_jobs(workflow, change=None) -> dict[str, int]:
    """Job counts a dry run of `workflow` plans, after `change` to its config ({} if none)."""
    return job_counts(workflow.dry_run(change=change, directory=workflow.workdir).stdout)


def test_reruns_stay_minimal_with_replicates_and_verified_fixes(finished_workflow, tmp_path):
    copy = finished_workflow.copy(tmp_path / "workflow")
    # Finished, siblings included (they depend on the fix plan through ancient()).
    assert dry_run_jobs(copy) == {}

    def one_more_seed(config):
        config["runs"]["cnn"]["repeats"] = 3

    # Only the new seed trains (repeats is no param of the others'); every seed is diagnosed
    # again, as each pools its replicates' curves into its ordinary training movement.
    jobs = dry_run_jobs(copy, one_more_seed)
    assert jobs["train_run"] == 1 and jobs["diagnose_run"] == 3 and "train_baseline" not in jobs
    assert jobs["compare_runs"] == 1

    def no_verification(config):
        config["runs"]["cnn_partial"]["verify_fixes"] = False

    # Switching verification off trains nothing: only the comparison is redrawn without them.
    jobs = dry_run_jobs(copy, no_verification)
    assert not {"train_run", "diagnose_run", "plan_fixes", "verify_fixes"} & set(jobs)
