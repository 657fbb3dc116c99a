"""The workflow on folders of real images (tiles of photographs scikit-image ships): folder
classes mixed with a simulated one, a labelled evaluation set, prediction, reruns and the
plan-time checks of bad folders."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage

from simtrain.data.examples import write_examples
from simtrain.evaluation.cli import main as predict_main
from tests.conftest import Workflow, job_counts, snakemake, write_config

pytestmark = pytest.mark.slow

SHIPPED = Path(skimage.__file__).parent / "data"
REAL_CONFIG = {
    "seed": 3,
    "image_size": 32,
    "images_per_class": 6,
    "images_per_shard": 4,
    "validation_fraction": 0.34,
    "bit_depth": 16,
    "ingest": {"aspect": "crop", "min_size": 32, "images_per_shard": 4},
    "classes": {
        "grass": {"folder": "data/train/grass"},
        "gravel": {"folder": "data/train/gravel"},
        "brick": {"folder": "data/train/brick"},
        "blobs": {"simulator": "blobs", "params": {"noise": 0.05}},
    },
    "evaluation": {"field": "data/field"},
    "predict": {"unlabelled": {"folder": "data/unlabelled", "run": "cnn", "model": "best"}},
    "runs": {
        "cnn": {"model": "small_cnn", "epochs": 2, "batch_size": 8},
        "base": {"model": "baseline"},
    },
}
# Diagnosis and plots are not needed here (the tiny workflow of conftest covers them).
TARGETS = ("results/evaluation.md", "results/predictions/unlabelled/predictions.tsv")


@pytest.fixture(scope="module")
def real_workflow(tmp_path_factory) -> Workflow:
    workdir = tmp_path_factory.mktemp("real")
    write_examples(workdir / "data", train=6, field=3)
    workflow = Workflow(workdir, write_config(workdir, REAL_CONFIG))
    workflow.run(*TARGETS)
    return workflow


def test_folder_classes_are_ingested_split_and_packed_at_16_bits(real_workflow):
    results = real_workflow.results
    manifest = pd.read_csv(results / "images/manifest.tsv", sep="\t", keep_default_na=False)
    grass = manifest[manifest["class"] == "grass"]
    assert len(grass) == 6 and set(grass["split"]) == {"train", "validation"}
    assert sorted(grass["source"]) == sorted(os.listdir(real_workflow.workdir / "data/train/grass"))
    assert (manifest.loc[manifest["class"] == "blobs", "source"] == "").all()
    images = np.load(results / "packed/train/images.npy", mmap_mode="r")
    assert images.dtype == np.uint16 and images.shape[1:] == (32, 32, 1)
    metrics = json.loads((results / "runs/cnn/seed-0/metrics.json").read_text())
    assert metrics["classes"] == ["blobs", "brick", "grass", "gravel"]


def test_every_run_is_scored_on_the_evaluation_set_with_its_missing_class(real_workflow):
    results = real_workflow.results
    table = pd.read_csv(results / "evaluation.tsv", sep="\t", keep_default_na=False)
    assert table["run"].tolist() == ["cnn", "base"]
    assert set(table["set"]) == {"field"} and set(table["missing_classes"]) == {"blobs"}
    assert (table["images"] == 9).all()
    assert table.loc[0, "beats_baseline"] in ("yes", "no") and table.loc[1, "beats_baseline"] == ""
    for run in ("cnn", "base"):
        scored = pd.read_csv(
            results / f"runs/{run}/seed-0/evaluation/field/predictions.tsv", sep="\t"
        )
        assert len(scored) == 9 and scored["file"].str.contains("/").all()
        confusion = pd.read_csv(
            results / f"runs/{run}/seed-0/evaluation/field/confusion.tsv", sep="\t"
        )
        assert confusion["true"].tolist() == ["blobs", "brick", "grass", "gravel"]
        assert confusion.drop(columns="true").to_numpy().sum() == 9
    markdown = (results / "evaluation.md").read_text()
    assert "No images of blobs" in markdown and "| cnn | small_cnn | 1 |" in markdown


def test_prediction_writes_every_file_and_matches_the_command_line(real_workflow, tmp_path):
    results = real_workflow.results
    table = pd.read_csv(results / "predictions/unlabelled/predictions.tsv", sep="\t")
    files = sorted(os.listdir(real_workflow.workdir / "data/unlabelled"))
    assert table["file"].tolist() == files
    probabilities = table[[f"p_{c}" for c in ("blobs", "brick", "grass", "gravel")]]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)

    output = tmp_path / "cli.tsv"
    run_dir = results / "runs/cnn/seed-0"
    folder = real_workflow.workdir / "data/unlabelled"
    argv = [str(run_dir), str(folder), "-o", str(output), "--model", "best", "--threads", "1"]
    assert predict_main(argv) == 0
    cli = pd.read_csv(output, sep="\t")
    assert cli["predicted"].tolist() == table["predicted"].tolist()
    np.testing.assert_allclose(cli.drop(columns=["file", "predicted"]), probabilities, atol=1e-6)
    with pytest.raises(SystemExit):
        predict_main([str(results / "runs/base/seed-0"), str(folder), "--model", "best"])


def test_changing_one_class_folder_reingests_that_class_only(real_workflow, tmp_path):
    copy = real_workflow.copy(tmp_path / "copy")
    grass = copy.workdir / "data/train/grass"
    first = sorted(grass.iterdir())[0]
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    counts = job_counts(copy.dry_run(*TARGETS, directory=tmp_path).stdout)
    assert counts["ingest_shard"] == 2  # grass's 2 shards of 4 + 2 images
    assert "simulate_shard" not in counts and "ingest_evaluation_set" not in counts


def bad_folder_error(workflow: Workflow, tmp_path: Path, change) -> str:
    config = json.loads(json.dumps(REAL_CONFIG))
    change(config)
    path = write_config(tmp_path, config, "bad.yaml")
    result = snakemake(workflow.workdir, "-n", "--configfile", str(path), check=False)
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_bad_folders_are_named_before_any_job(real_workflow, tmp_path):
    data = real_workflow.workdir / "data"
    typo = tmp_path / "typo"
    shutil.copytree(data / "field", typo)
    (typo / "grass").rename(typo / "gras")
    message = bad_folder_error(
        real_workflow, tmp_path, lambda c: c["evaluation"].update(x=str(typo))
    )
    assert "evaluation.x: sub-folder 'gras'" in message and "did you mean 'grass'?" in message

    message = bad_folder_error(
        real_workflow, tmp_path, lambda c: c["predict"]["unlabelled"].update(run="cnm")
    )
    assert "predict.unlabelled.run: 'cnm' is not a configured run" in message
    assert "did you mean 'cnn'?" in message
