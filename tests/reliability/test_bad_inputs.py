"""The bad-input catalogue: each is rejected with a message naming the key or file and
what was expected, before any job where possible, and earlier results stay untouched."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import TINY_CONFIG, snakemake, write_config

PLUGIN = """
import numpy as np

def raises(rng, size):
    raise RuntimeError("detector offline")

def wrong_shape(rng, size):
    return rng.random((size, size + 1))

def nan(rng, size):
    image = rng.random((size, size))
    image[0, 0] = np.nan
    return image

def constant(rng, size):
    return np.full((size, size), 0.5)
"""


def with_class(simulator):
    return lambda c: c["classes"]["rings"].update(simulator=simulator, params={})


def with_run(**settings):
    return lambda c: c.update(runs={"r": {"model": "small_cnn", **settings}})


# (id, change to the tiny config, pattern the error must match)
CONFIG_CASES = [
    ("unknown-key", lambda c: c.update(colour="red"), r"colour: unknown key"),
    ("wrong-type", lambda c: c.update(seed="abc"), r"'abc' is not of type 'integer'"),
    (
        "zero-count",
        lambda c: c.update(images_per_class=0),
        r"0 is less than the minimum of 2.*images_per_class",
    ),
    ("negative-count", lambda c: c.update(images_per_shard=-1), r"-1 is less than"),
    ("image-size-float", lambda c: c.update(image_size=31.5), r"31\.5 is not of type 'integer'"),
    ("image-size-zero", lambda c: c.update(image_size=0), r"0 is less than the minimum of 32"),
    ("fraction-zero", lambda c: c.update(validation_fraction=0), r"less than or equal to.*0"),
    ("fraction-one", lambda c: c.update(validation_fraction=1), r"greater than or equal to.*1"),
    (
        "empty-class-name",
        lambda c: c["classes"].update({"": {"simulator": "blobs"}}),
        r"'' does not match",
    ),
    (
        "one-class",
        lambda c: c.update(classes={"a": {"simulator": "blobs"}}),
        r"should be non-empty|does not have enough properties|is too short",
    ),
    ("unknown-simulator", with_class("spirals"), r"classes\.rings\.simulator.*spirals"),
    ("plugin-not-importable", with_class("nowhere:make"), r"classes\.rings\.simulator.*nowhere"),
    (
        "plugin-raises",
        with_class("bad_sims:raises"),
        r"classes\.rings.*'bad_sims:raises'.*detector offline",
    ),
    (
        "plugin-wrong-shape",
        with_class("bad_sims:wrong_shape"),
        r"class 'rings' \(simulator 'bad_sims:wrong_shape'\).*shape \(32, 33\)",
    ),
    ("plugin-nan", with_class("bad_sims:nan"), r"class 'rings'.*NaN or inf"),
    ("plugin-constant", with_class("bad_sims:constant"), r"class 'rings'.*constant image"),
    ("unknown-model", with_run(model="vgg99"), r"runs\.r\.model: unknown model 'vgg99'"),
    ("batch-size-zero", with_run(batch_size=0), r"0 is less than the minimum of 1"),
    (
        "steps-beyond-data",
        with_run(batch_size=8, steps_per_epoch=50),
        r"runs\.r\.steps_per_epoch: 50 batches of 8 exceed the data",
    ),
    (
        "validation-steps-beyond-data",
        with_run(batch_size=8, validation_steps=5),
        r"runs\.r\.validation_steps: 5 batches",
    ),
    (
        "train-images-beyond-data",
        with_run(train_images=1000),
        r"runs\.r\.train_images: 1000 is outside",
    ),
    ("unknown-optimizer", with_run(optimizer="adamax"), r"'adamax' is not one of"),
]


def digest_tree(results: Path) -> dict[str, str]:
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file() and "logs" not in p.parts
    }


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A finished good run whose results every bad input must leave untouched."""
    workdir = tmp_path_factory.mktemp("good-run")
    (workdir / "bad_sims.py").write_text(PLUGIN)
    config = write_config(workdir, TINY_CONFIG)
    snakemake(workdir, "--cores", "2", "--configfile", str(config))
    return workdir


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES]
)
def test_a_bad_config_is_rejected_before_any_job(good_run, tiny_config, change, message):
    before = digest_tree(good_run / "results")
    change(tiny_config)
    path = write_config(good_run, tiny_config, "bad.yaml")
    result = snakemake(good_run, "--cores", "2", "--configfile", str(path), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(message, output, re.S), output[-3000:]
    assert "localrule" not in output and "rule simulate_shard" not in output  # no job ran
    assert digest_tree(good_run / "results") == before


def test_duplicate_class_names_are_rejected(good_run):
    text = yaml.safe_dump(TINY_CONFIG, sort_keys=False)
    text = text.replace("classes:\n", "classes:\n  rings:\n    simulator: lattice\n", 1)
    path = good_run / "duplicate.yaml"
    path.write_text(text)
    result = snakemake(good_run, "--cores", "2", "--configfile", str(path), check=False)
    assert result.returncode != 0
    assert re.search(r"duplicate.yaml, line \d+: duplicate key 'rings'", result.stderr)


@pytest.mark.parametrize("damage", ["corrupt", "wrong-size"])
def test_a_damaged_png_fails_packing_with_its_path(good_run, tiny_config, damage):
    results = good_run / "results"
    victim = sorted((results / "images/validation/rings").glob("*.png"))[0]
    original = victim.read_bytes()
    victim.unlink()  # break the hard link: the simulated original stays intact
    if damage == "corrupt":
        victim.write_bytes(original[: len(original) // 2])
    else:
        Image.fromarray(np.zeros((31, 32), np.uint8)).save(victim)
    train_before = digest_tree(results / "packed/train")
    try:
        path = write_config(good_run, tiny_config, "good.yaml")
        result = snakemake(
            good_run,
            "--cores",
            "2",
            "--configfile",
            str(path),
            "--forcerun",
            "pack_split",
            check=False,
        )
        assert result.returncode != 0
        log = (results / "logs/pack/validation.log").read_text()
        assert str(victim.relative_to(good_run)) in log
        assert digest_tree(results / "packed/train") == train_before
    finally:
        victim.unlink()
        victim.write_bytes(original)
        snakemake(good_run, "--cores", "2", "--configfile", str(path))


def test_every_class_keeps_a_validation_image_at_a_tiny_fraction(tmp_path, tiny_config):
    tiny_config.update(images_per_class=3, images_per_shard=3, validation_fraction=0.01)
    path = write_config(tmp_path, tiny_config)
    snakemake(tmp_path, "--cores", "2", "--configfile", str(path), "--until", "split_dataset")
    for klass in tiny_config["classes"]:
        assert len(list((tmp_path / f"results/images/validation/{klass}").glob("*.png"))) == 1
