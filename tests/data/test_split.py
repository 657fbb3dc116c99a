import os

import numpy as np
import pandas as pd
import pytest

from simtrain.data.png import write_png
from simtrain.data.simulate import image_name
from simtrain.data.split import DuplicateImageError, split_dataset, split_indices, validation_count


def make_shards(root, counts, same_image=False):
    """Shard folders with distinct random PNGs (or one repeated image)."""
    rng = np.random.default_rng(0)
    dirs = []
    for klass, n in counts.items():
        shard = root / "all" / klass / "shard-0"
        shard.mkdir(parents=True)
        for i in range(n):
            pixels = np.full((8, 8), 7, np.uint8) if same_image else rng.integers(0, 256, (8, 8))
            write_png(shard / image_name(klass, i), pixels.astype(np.uint8))
        dirs.append(shard)
    return dirs


def test_split_is_stratified_disjoint_and_deterministic(tmp_path):
    shards = make_shards(tmp_path, {"a": 20, "b-2": 10})
    kwargs = dict(images_root=tmp_path, validation_fraction=0.3, seed=1)
    manifest = split_dataset(shards, manifest_path=tmp_path / "m.tsv", **kwargs)

    counts = manifest.groupby(["class", "split"]).size().to_dict()
    assert counts == {
        ("a", "train"): 14,
        ("a", "validation"): 6,
        ("b-2", "train"): 7,
        ("b-2", "validation"): 3,
    }
    train = set(manifest.loc[manifest.split == "train", "sha256"])
    assert train.isdisjoint(manifest.loc[manifest.split == "validation", "sha256"])
    assert list(pd.read_csv(tmp_path / "m.tsv", sep="\t").columns) == [
        "path",
        "class",
        "split",
        "index",
        "sha256",
    ]
    for path in manifest["path"]:
        linked = tmp_path / path
        assert linked.stat().st_nlink == 2  # a hard link, not a copy

    again = split_dataset(shards, manifest_path=tmp_path / "m2.tsv", **kwargs)
    assert again.equals(manifest)
    assert (tmp_path / "m.tsv").read_bytes() == (tmp_path / "m2.tsv").read_bytes()


def test_split_refuses_images_that_appear_in_both_splits(tmp_path):
    shards = make_shards(tmp_path, {"a": 6, "b": 6}, same_image=True)
    with pytest.raises(DuplicateImageError, match="both train and validation"):
        split_dataset(
            shards,
            images_root=tmp_path,
            manifest_path=tmp_path / "m.tsv",
            validation_fraction=0.5,
            seed=0,
        )
    assert not (tmp_path / "m.tsv").exists()
    assert not (tmp_path / "train").exists()


def test_split_indices_depend_on_fraction_seed_and_class_only():
    train, validation = split_indices(range(100), 0.2, seed=5, class_name="x")
    assert len(validation) == 20 and len(train) == 80
    assert set(train).isdisjoint(validation)
    assert np.array_equal(validation, split_indices(range(100), 0.2, 5, "x")[1])
    # 20 of 100: two independent draws coincide with probability 1 / C(100, 20) ~ 2e-21, so
    # each of seed and class must change the draw on its own.
    other_seed = split_indices(range(100), 0.2, seed=6, class_name="x")[1]
    other_class = split_indices(range(100), 0.2, seed=5, class_name="y")[1]
    assert set(other_seed) != set(validation)
    assert set(other_class) != set(validation)
    assert set(other_seed) != set(other_class)


@pytest.mark.parametrize(("n", "fraction", "expected"), [(10, 0.2, 2), (3, 0.01, 1), (3, 0.99, 2)])
def test_every_class_keeps_images_in_both_splits(n, fraction, expected):
    assert validation_count(n, fraction) == expected


def test_split_replaces_an_earlier_split_without_leftovers(tmp_path):
    shards = make_shards(tmp_path, {"a": 10, "b": 10})
    kwargs = dict(images_root=tmp_path, manifest_path=tmp_path / "m.tsv", seed=0)
    split_dataset(shards, validation_fraction=0.5, **kwargs)
    split_dataset(shards, validation_fraction=0.2, **kwargs)
    on_disk = sorted(
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.glob("*/*/*.png")
        if p.parts[-3] in ("train", "validation")
    )
    manifest = pd.read_csv(tmp_path / "m.tsv", sep="\t")
    assert on_disk == sorted(manifest["path"])
    assert (manifest.split == "validation").sum() == 4
    assert os.listdir(tmp_path).count("train") == 1
