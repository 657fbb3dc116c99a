"""The whole workflow on a tiny config: data, training, diagnostics, comparison, report.

Every test reads the session's finished tiny workflow (tests/conftest.py) and changes nothing
in it; the report is written outside it.
"""

import base64
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
import yaml
from scipy.stats import binomtest

from tests.conftest import FINISHED_RUNS, TINY_CONFIG

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
    diagnostics = json.loads((results / f"runs/{run}/diagnostics.json").read_text())
    return {finding["code"] for finding in diagnostics["findings"]}


def test_every_run_has_its_artifacts(finished_workflow):
    results = finished_workflow.results
    for run in FINISHED_RUNS:
        for name in RUN_ARTIFACTS:
            assert (results / "runs" / run / name).stat().st_size > 0, f"{run}/{name}"
    assert (results / "runs/cnn/model.keras").exists()
    assert (results / "benchmarks/train/cnn.tsv").exists()


def test_partial_epochs_are_diagnosed_and_full_coverage_is_not(finished_workflow):
    results = finished_workflow.results
    assert {"PARTIAL_EPOCH", "PARTIAL_VALIDATION"} <= codes(results, "cnn_partial")
    assert not {"PARTIAL_EPOCH", "PARTIAL_VALIDATION"} & codes(results, "cnn")


def test_comparison_accuracies_are_those_of_each_runs_predictions(finished_workflow):
    results = finished_workflow.results
    table = pd.read_csv(results / "comparison.tsv", sep="\t").set_index("run")
    assert sorted(table.index) == sorted(FINISHED_RUNS)
    for run in FINISHED_RUNS:
        predictions = pd.read_csv(results / f"runs/{run}/predictions.tsv", sep="\t")
        accuracy = (predictions["true"] == predictions["predicted"]).mean()
        assert table.loc[run, "final_val_accuracy"] == pytest.approx(accuracy, abs=1e-4), run
        assert table.loc[run, "validation_images"] == len(predictions)


def test_beats_baseline_follows_an_exact_mcnemar_test_on_the_same_images(finished_workflow):
    results = finished_workflow.results
    table = pd.read_csv(results / "comparison.tsv", sep="\t", keep_default_na=False)
    table = table.set_index("run")

    def correct(run):
        predictions = pd.read_csv(results / f"runs/{run}/predictions.tsv", sep="\t")
        return (predictions["true"] == predictions["predicted"]).to_numpy()

    baseline = correct("base")
    assert table.loc["base", "beats_baseline"] == ""  # the baseline is not compared to itself
    for run in ("cnn", "cnn_partial"):
        deep = correct(run)
        only_deep, only_base = int((deep & ~baseline).sum()), int((~deep & baseline).sum())
        discordant = only_deep + only_base
        p = binomtest(only_deep, discordant).pvalue if discordant else 1.0
        assert float(table.loc[run, "mcnemar_p"]) == pytest.approx(p, abs=1e-3), run
        expected = "yes" if deep.mean() > baseline.mean() and p < 0.05 else "no"
        assert table.loc[run, "beats_baseline"] == expected, run


def test_comparison_markdown_has_one_row_per_run_with_its_main_finding(finished_workflow):
    results = finished_workflow.results
    markdown = (results / "comparison.md").read_text()
    table = pd.read_csv(results / "comparison.tsv", sep="\t").set_index("run")
    for run in FINISHED_RUNS:
        [row] = [line for line in markdown.splitlines() if line.startswith(f"| `{run}` |")]
        assert f"| {FINISHED_RUNS[run]['model']} |" in row
        finding = table.loc[run, "main_finding"]
        if isinstance(finding, str):
            assert f"| {finding} |" in row, row


def test_resolved_config_reproduces_the_run(finished_workflow):
    resolved = yaml.safe_load(
        (finished_workflow.results / "runs/cnn/config.resolved.yaml").read_text()
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
    for run in FINISHED_RUNS:
        for name in REPORTED_RUN_FILES:
            key = f"results/runs/{run}/{name}"
            assert key in embedded, f"{key} is missing from the report"
            on_disk = (finished_workflow.workdir / key).read_bytes()
            assert embedded_bytes(embedded[key]) == on_disk, key
    diagnostics = embedded_bytes(embedded["results/runs/cnn_partial/diagnostics.md"]).decode()
    assert "PARTIAL_EPOCH" in diagnostics and "PARTIAL_VALIDATION" in diagnostics


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
        pytest.skip("headless Chromium is not installed (.ci/run installs Debian's chromium)")
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
    for name in REPORTED_RUN_FILES:
        assert f"results/runs/{run}/{name}" in text, f"{run}/{name} is not shown"


def test_rendered_report_shows_the_comparison(report, tmp_path):
    text = rendered_text(report, ["Comparison"], tmp_path)
    for name in REPORTED_COMPARISON:
        assert f"results/{name}" in text, f"{name} is not shown"
