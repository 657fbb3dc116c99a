"""The bad-input catalogue: each is rejected with a message naming the key or file and
what was expected, before any job where possible, and earlier results stay untouched."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from snakemake.utils import validate

from simtrain.config import ConfigError, check_classes, check_runs, check_schema
from tests.conftest import ROOT, TINY_CONFIG, Workflow, snakemake, write_config

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


# (id, change to the tiny config, the key the message must name, what it must say of it)
CONFIG_CASES = [
    ("unknown-key", lambda c: c.update(colour="red"), "colour", r"unknown key|unexpected"),
    ("wrong-type", lambda c: c.update(seed="abc"), r"\bseed", r"'abc' is not of type 'integer'"),
    (
        "zero-count",
        lambda c: c.update(images_per_class=0),
        "images_per_class",
        r"0 is less than the minimum of 2",
    ),
    (
        "negative-count",
        lambda c: c.update(images_per_shard=-1),
        "images_per_shard",
        r"-1 is less than the minimum of 1",
    ),
    (
        "image-size-float",
        lambda c: c.update(image_size=31.5),
        "image_size",
        r"31\.5 is not of type 'integer'",
    ),
    (
        "image-size-zero",
        lambda c: c.update(image_size=0),
        "image_size",
        r"0 is less than the minimum of 32",
    ),
    (
        "fraction-zero",
        lambda c: c.update(validation_fraction=0),
        "validation_fraction",
        r"0 is less than or equal to the minimum of 0",
    ),
    (
        "fraction-one",
        lambda c: c.update(validation_fraction=1),
        "validation_fraction",
        r"1 is greater than or equal to the maximum of 1",
    ),
    (
        "empty-class-name",
        lambda c: c["classes"].update({"": {"simulator": "blobs"}}),
        "classes",
        r"'' does not match",
    ),
    (
        "one-class",
        lambda c: c.update(classes={"a": {"simulator": "blobs"}}),
        "classes",
        r"does not have enough properties|at least 2",
    ),
    ("unknown-simulator", with_class("spirals"), r"classes\.rings\.simulator", "'spirals'"),
    ("plugin-not-importable", with_class("nowhere:make"), r"classes\.rings\.simulator", "nowhere"),
    (
        "plugin-raises",
        with_class("bad_sims:raises"),
        r"classes\.rings",
        r"'bad_sims:raises'.*detector offline",
    ),
    (
        "plugin-wrong-shape",
        with_class("bad_sims:wrong_shape"),
        r"classes\.rings",
        r"'bad_sims:wrong_shape'.*shape \(32, 33\)",
    ),
    ("plugin-nan", with_class("bad_sims:nan"), r"classes\.rings", r"'bad_sims:nan'.*NaN or inf"),
    (
        "plugin-constant",
        with_class("bad_sims:constant"),
        r"classes\.rings",
        r"'bad_sims:constant'.*constant image",
    ),
    ("unknown-model", with_run(model="vgg99"), r"runs\.r\.model", r"unknown model 'vgg99'"),
    ("batch-size-zero", with_run(batch_size=0), r"runs\.r\.batch_size", r"minimum of 1"),
    (
        "steps-beyond-data",
        with_run(batch_size=8, steps_per_epoch=50),
        r"runs\.r\.steps_per_epoch",
        r"50 batches of 8 exceed the data",
    ),
    (
        "validation-steps-beyond-data",
        with_run(batch_size=8, validation_steps=5),
        r"runs\.r\.validation_steps",
        r"5 batches of 8 exceed the data",
    ),
    (
        "train-images-beyond-data",
        with_run(train_images=1000),
        r"runs\.r\.train_images",
        r"1000 is outside",
    ),
    (
        "unknown-optimizer",
        with_run(optimizer="adamax"),
        r"runs\.r\.optimizer",
        r"'adamax' is not one of",
    ),
]
# Cases also run through the `snakemake` command line, to prove the Snakefile makes each kind
# of check (schema, simulator plug-in, run settings) before any job: the others run the same
# checks in-process, as the Snakefile calls them, in a fraction of the time.
COMMAND_LINE_CASES = {"unknown-key", "plugin-raises", "steps-beyond-data"}
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def defined_rules() -> set[str]:
    sources = [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]
    return {
        name
        for source in sources
        for name in re.findall(r"^rule (\w+):", source.read_text(), flags=re.MULTILINE)
    }


def key_then(key: str, message: str) -> str:
    """A pattern for the key, then the message: grouped, so an alternation in either stays
    inside it (`colour.*unknown key|unexpected` would match "unexpected" alone)."""
    return rf"(?:{key}).*(?:{message})"


def check_like_the_snakefile(config: dict, workdir: Path) -> None:
    """The Snakefile's checks of a loaded config, in its order, in this process."""
    check_schema(config, yaml.safe_load(SCHEMA.read_text()))
    validate(config, str(SCHEMA))  # fills in the schema's defaults, as in the Snakefile
    check_classes(config, search_path=workdir)
    check_runs(config, search_path=workdir)


def digest_tree(results: Path) -> dict[str, str]:
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file() and "logs" not in p.parts
    }


def test_the_key_pattern_needs_the_key_and_the_message():
    pattern = key_then("colour", r"unknown key|unexpected")
    assert re.search(pattern, "colour: unknown key")
    assert not re.search(pattern, "Additional properties are not allowed ('x' was unexpected)")
    assert not re.search(key_then("classes", "at least 2"), "seed: allowed: at least 2 entries")


@pytest.fixture(scope="module")
def good_run(finished_workflow, tmp_path_factory) -> Workflow:
    """A finished good run with trained models, whose results every bad input must leave
    untouched (a copy of the session's finished workflow)."""
    copy = finished_workflow.copy(tmp_path_factory.mktemp("good-run"))
    (copy.workdir / "bad_sims.py").write_text(PLUGIN)
    return copy


def test_the_good_run_has_trained_models(good_run):
    assert (good_run.results / "runs/cnn/seed-0/model.keras").exists()
    assert (good_run.results / "comparison.tsv").exists()


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [c[1:] for c in CONFIG_CASES],
    ids=[c[0] for c in CONFIG_CASES],
)
def test_a_bad_config_is_rejected_naming_its_key(good_run, tiny_config, change, key, message):
    change(tiny_config)
    with pytest.raises(ConfigError) as error:
        check_like_the_snakefile(tiny_config, good_run.workdir)
    assert re.search(key_then(key, message), str(error.value), re.S), str(error.value)


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [c[1:] for c in CONFIG_CASES if c[0] in COMMAND_LINE_CASES],
    ids=[c[0] for c in CONFIG_CASES if c[0] in COMMAND_LINE_CASES],
)
def test_a_bad_config_stops_snakemake_before_any_job(good_run, tiny_config, change, key, message):
    before = digest_tree(good_run.results)
    change(tiny_config)
    path = write_config(good_run.workdir, tiny_config, "bad.yaml")
    result = snakemake(
        good_run.workdir,
        *("--cores", "2", "--configfile", str(path)),
        snakefile=good_run.snakefile,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(key_then(key, message), output, re.S), output[-3000:]
    started = [r for r in defined_rules() if re.search(rf"\b(local)?rule {r}:", output)]
    assert started == [], f"jobs ran: {started}"
    assert digest_tree(good_run.results) == before


def test_duplicate_class_names_are_rejected(good_run):
    text = yaml.safe_dump(TINY_CONFIG, sort_keys=False)
    text = text.replace("classes:\n", "classes:\n  rings:\n    simulator: lattice\n", 1)
    path = good_run.workdir / "duplicate.yaml"
    path.write_text(text)
    result = snakemake(
        good_run.workdir,
        *("--cores", "2", "--configfile", str(path)),
        snakefile=good_run.snakefile,
        check=False,
    )
    assert result.returncode != 0
    assert re.search(r"duplicate.yaml, line \d+: duplicate key 'rings'", result.stderr)


def set_manifest_hash(manifest: Path, image: Path, root: Path) -> None:
    """Record `image`'s current hash in the manifest, as if the split had seen it so."""
    table = pd.read_csv(manifest, sep="\t", dtype=str, keep_default_na=False)
    row = table["path"] == image.relative_to(root).as_posix()
    assert row.sum() == 1, f"{image} is not in {manifest}"
    table.loc[row, "sha256"] = hashlib.sha256(image.read_bytes()).hexdigest()
    table.to_csv(manifest, sep="\t", index=False)


# (id, how the PNG is damaged, whether the manifest hash is updated to match, the message)
DAMAGES = [
    ("modified", "corrupt", False, r"content differs from the manifest"),
    ("corrupt", "corrupt", True, r"not a readable PNG"),
    ("wrong-size", "wrong-size", True, r"expected 32x32 pixels, got 32x31"),
]


@pytest.mark.parametrize(
    ("damage", "rehash", "message"), [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES]
)
def test_a_damaged_png_fails_packing_with_its_path(
    finished_workflow, tmp_path, damage, rehash, message
):
    copy = finished_workflow.copy(tmp_path / "workflow")
    results = copy.results
    victim = sorted((results / "images/validation/rings").glob("*.png"))[0]
    original = victim.read_bytes()
    victim.unlink()  # break the hard link: the simulated original stays intact
    if damage == "corrupt":
        victim.write_bytes(original[: len(original) // 2])
    else:
        Image.fromarray(np.zeros((31, 32), np.uint8)).save(victim)
    if rehash:
        set_manifest_hash(results / "images/manifest.tsv", victim, results / "images")
    train_before = digest_tree(results / "packed/train")
    result = copy.run(
        "results/packed/validation/images.npy", "--forcerun", "pack_split", check=False
    )
    assert result.returncode != 0
    log = (results / "logs/pack/validation.log").read_text()
    assert re.search(rf"{re.escape(str(victim.relative_to(copy.workdir)))}: {message}", log), log[
        -3000:
    ]
    assert digest_tree(results / "packed/train") == train_before


def test_every_class_keeps_a_validation_image_at_a_tiny_fraction(tmp_path, tiny_config):
    tiny_config.update(images_per_class=3, images_per_shard=3, validation_fraction=0.01)
    path = write_config(tmp_path, tiny_config)
    snakemake(tmp_path, "--cores", "2", "--configfile", str(path), "--until", "split_dataset")
    for klass in tiny_config["classes"]:
        assert len(list((tmp_path / f"results/images/validation/{klass}").glob("*.png"))) == 1
