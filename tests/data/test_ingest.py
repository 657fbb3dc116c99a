"""Ingesting folders of real images: shards like simulated ones, labelled and unlabelled sets,
and folders that are bad or change while read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage
import tifffile
from PIL import Image

from simtrain.data.folders import (
    FolderError,
    fingerprint,
    image_entries,
    labelled_images,
)
from simtrain.data.images import Conversion
from simtrain.data.ingest import (
    IngestError,
    convert_file,
    ingest_labelled_set,
    ingest_shard,
    ingest_unlabelled_set,
)
from simtrain.data.pack import pack_split
from simtrain.data.simulate import write_shard
from simtrain.data.split import split_dataset

SHIPPED = Path(skimage.__file__).parent / "data"
PHOTOGRAPHS = ("camera.png", "coins.png", "moon.png", "rocket.jpg", "coffee.png", "text.png")


def photo_folder(folder: Path, names=PHOTOGRAPHS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SHIPPED / name, folder / name)
    return folder


def test_a_folder_class_is_ingested_in_shards_split_and_packed_at_16_bits(tmp_path):
    photos = photo_folder(tmp_path / "photos")
    (photos / "deep").mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(photos / "deep" / "a.tif", rng.integers(0, 65536, (50, 70), dtype=np.uint16))
    entries = image_entries(photos, "classes.photos.folder")
    assert [e.path for e in entries][:2] == ["camera.png", "coffee.png"]
    assert len(entries) == 7
    conversion = Conversion(32, bit_depth=16)
    shards = []
    for shard in range(3):  # 7 images, 3 per shard
        out = tmp_path / "images" / "all" / "photos" / f"shard-{shard}"
        ingest_shard(
            out,
            class_name="photos",
            folder=photos,
            planned_fingerprint=fingerprint(entries),
            shard=shard,
            images_per_shard=3,
            conversion=conversion,
        )
        shards.append(out)
    assert sorted(p.name for p in shards[2].iterdir()) == ["photos-000006.png", "sources.tsv"]
    simulated = tmp_path / "images" / "all" / "blobs" / "shard-0"
    write_shard(
        simulated,
        class_name="blobs",
        simulator="blobs",
        params={},
        seed=0,
        size=32,
        indices=range(6),
    )
    manifest = split_dataset(
        [*shards, simulated],
        images_root=tmp_path / "images",
        manifest_path=tmp_path / "manifest.tsv",
        validation_fraction=0.3,
        seed=0,
    )
    real = manifest[manifest["class"] == "photos"]
    assert sorted(real["source"]) == sorted(e.path for e in entries)
    assert (manifest.loc[manifest["class"] == "blobs", "source"] == "").all()
    assert real["source_sha256"].str.len().eq(64).all()
    out = tmp_path / "packed" / "train"
    pack_split(
        images_root=tmp_path / "images",
        manifest_path=tmp_path / "manifest.tsv",
        split="train",
        classes=["blobs", "photos"],
        size=32,
        images_out=out / "images.npy",
        labels_out=out / "labels.npy",
        classes_out=out / "classes.json",
        bit_depth=16,
    )
    images = np.load(out / "images.npy")
    labels = np.load(out / "labels.npy")
    assert images.dtype == np.uint16
    # Simulated 8-bit images are scaled by 257; the real ones keep finer levels.
    assert (images[labels == 0] % 257 == 0).all()
    assert (images[labels == 1] % 257 != 0).any()


def test_a_folder_changed_since_planning_is_refused(tmp_path):
    photos = photo_folder(tmp_path / "photos", PHOTOGRAPHS[:3])
    planned = fingerprint(image_entries(photos, "key"))
    shutil.copy(SHIPPED / "moon.png", photos / "new.png")
    with pytest.raises(FolderError, match="photos changed since the workflow was planned"):
        ingest_shard(
            tmp_path / "shard-0",
            class_name="photos",
            folder=photos,
            planned_fingerprint=planned,
            shard=0,
            images_per_shard=10,
            conversion=Conversion(32),
        )
    assert not (tmp_path / "shard-0").exists()


def test_a_file_changed_after_listing_is_named(tmp_path):
    photos = photo_folder(tmp_path / "photos", PHOTOGRAPHS[:1])
    (entry,) = image_entries(photos, "key")
    os.utime(photos / entry.path, ns=(entry.mtime_ns + 10**9, entry.mtime_ns + 10**9))
    with pytest.raises(FolderError, match=r"camera.png: changed since its folder was listed"):
        convert_file(photos, entry, Conversion(32))
    (photos / entry.path).unlink()
    with pytest.raises(FolderError, match=r"camera.png: disappeared"):
        convert_file(photos, entry, Conversion(32))


def test_every_bad_file_of_a_shard_is_named_and_nothing_is_written(tmp_path):
    photos = photo_folder(tmp_path / "photos", PHOTOGRAPHS[:2])
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(photos / "tiny.png")
    entries = image_entries(photos, "key")
    with pytest.raises(IngestError) as caught:
        ingest_shard(
            tmp_path / "shard-0",
            class_name="photos",
            folder=photos,
            planned_fingerprint=fingerprint(entries),
            shard=0,
            images_per_shard=10,
            conversion=Conversion(32),
        )
    message = str(caught.value)
    assert "2 file(s)" in message and "broken.png: not a readable image" in message
    assert "tiny.png: 10x10 pixels is smaller than ingest.min_size" in message
    assert not (tmp_path / "shard-0").exists()


def test_class_folders_with_other_files_or_no_images_are_refused(tmp_path):
    photos = photo_folder(tmp_path / "photos", PHOTOGRAPHS[:1])
    (photos / "README.txt").write_text("notes")
    (photos / ".hidden").write_text("skipped")
    with pytest.raises(FolderError, match=r"classes.x.folder: .*README.txt is not an image file"):
        image_entries(photos, "classes.x.folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderError, match=r"classes.y.folder: .*empty holds no images"):
        image_entries(tmp_path / "empty", "classes.y.folder")
    with pytest.raises(FolderError, match=r"classes.z.folder: .*missing does not exist"):
        image_entries(tmp_path / "missing", "classes.z.folder")


def test_a_labelled_set_may_miss_a_class_but_not_misname_one(tmp_path):
    root = tmp_path / "field"
    photo_folder(root / "coins", ["coins.png", "moon.png"])
    photo_folder(root / "camera", ["camera.png"])
    classes = ["camera", "coins", "streaks"]
    files = ingest_labelled_set(
        root,
        classes=classes,
        conversion=Conversion(32),
        out_dir=tmp_path / "set",
        key="evaluation.field",
    )
    assert files["file"].tolist() == ["camera/camera.png", "coins/coins.png", "coins/moon.png"]
    assert np.load(tmp_path / "set" / "labels.npy").tolist() == [0, 1, 1]
    assert np.load(tmp_path / "set" / "images.npy").shape == (3, 32, 32, 1)

    photo_folder(root / "streak", ["text.png"])
    with pytest.raises(FolderError, match=r"sub-folder 'streak' .* did you mean 'streaks'\?"):
        labelled_images(root, classes, "evaluation.field")
    shutil.rmtree(root / "streak")
    (root / "streaks").mkdir()
    with pytest.raises(FolderError, match=r"class folder .*streaks holds no images"):
        labelled_images(root, classes, "evaluation.field")
    (root / "streaks").rmdir()
    shutil.copy(SHIPPED / "text.png", root / "loose.png")
    with pytest.raises(FolderError, match=r"loose.png is not in a class sub-folder"):
        labelled_images(root, classes, "evaluation.field")


def test_an_unlabelled_folder_becomes_an_array_in_file_order(tmp_path):
    photos = photo_folder(tmp_path / "photos", PHOTOGRAPHS[:3])
    files = ingest_unlabelled_set(
        photos,
        conversion=Conversion(40),
        out_dir=tmp_path / "set",
        key="predict.x.folder",
        threads=2,
    )
    assert files["file"].tolist() == ["camera.png", "coins.png", "moon.png"]
    images = np.load(tmp_path / "set" / "images.npy", mmap_mode="r")
    assert images.shape == (3, 40, 40, 1) and images.dtype == np.uint8
    table = pd.read_csv(tmp_path / "set" / "files.tsv", sep="\t")
    assert table["sha256"].str.len().eq(64).all()
