import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from simtrain.data.pack import ImageFileError, pack_split
from simtrain.data.split import split_dataset
from tests.data.test_split import make_shards


def split_classes(root, counts: dict[str, int]):
    """Shards of `counts` images per class under root, split 3:1 into root/{train,validation}."""
    split_dataset(
        make_shards(root, counts),
        images_root=root,
        manifest_path=root / "manifest.tsv",
        validation_fraction=0.25,
        seed=0,
    )
    return root


@pytest.fixture
def split_root(tmp_path):
    return split_classes(tmp_path, {"a": 6, "b": 4})


def pack(root, split="train", size=8):
    out = root / "packed" / split
    pack_split(
        images_root=root,
        manifest_path=root / "manifest.tsv",
        split=split,
        classes=["a", "b"],
        size=size,
        images_out=out / "images.npy",
        labels_out=out / "labels.npy",
        classes_out=out / "classes.json",
        threads=2,
    )
    return out


def test_pack_writes_uint8_arrays_readable_by_memory_map(split_root):
    out = pack(split_root)
    images = np.load(out / "images.npy", mmap_mode="r")
    labels = np.load(out / "labels.npy", mmap_mode="r")
    assert isinstance(images, np.memmap)
    assert images.dtype == np.uint8 and images.shape == (7, 8, 8, 1)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert json.loads((out / "classes.json").read_text()) == ["a", "b"]
    first = sorted((split_root / "train" / "a").glob("*.png"))[0]
    assert np.array_equal(images[0, :, :, 0], np.asarray(Image.open(first)))


def replace_image(root, victim, content: bytes) -> None:
    """Give `victim` new content and record its hash in the manifest, so that packing
    gets past the hash check to the decoder and the size check."""
    victim.unlink()  # break the hard link so the simulated original stays intact
    victim.write_bytes(content)
    manifest = pd.read_csv(root / "manifest.tsv", sep="\t", dtype=str, keep_default_na=False)
    row = manifest["path"] == victim.relative_to(root).as_posix()
    manifest.loc[row, "sha256"] = hashlib.sha256(content).hexdigest()
    manifest.to_csv(root / "manifest.tsv", sep="\t", index=False)


def png_bytes(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_png_changed_after_the_split_fails_the_hash_check_with_its_path(split_root):
    victim = sorted((split_root / "validation" / "b").glob("*.png"))[0]
    victim.unlink()
    victim.write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))
    with pytest.raises(ImageFileError, match=rf"{victim}: content differs from the manifest"):
        pack(split_root, "validation")


def test_a_corrupt_png_fails_in_the_decoder_with_its_path(split_root):
    victim = sorted((split_root / "validation" / "b").glob("*.png"))[0]
    replace_image(split_root, victim, b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageFileError, match=rf"{victim}: not a readable PNG"):
        pack(split_root, "validation")
    assert not (split_root / "packed" / "validation" / "images.npy").exists()


def test_a_png_of_the_wrong_size_fails_the_size_check_with_its_path(split_root):
    victim = sorted((split_root / "train" / "a").glob("*.png"))[0]
    replace_image(split_root, victim, png_bytes(np.zeros((9, 8), np.uint8)))
    with pytest.raises(ImageFileError, match=rf"{victim}: expected 8x8 pixels, got 8x9"):
        pack(split_root)


def test_a_wrong_size_png_is_named_even_without_a_manifest_hash(tmp_path):
    from simtrain.data.pack import read_png

    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(path)
    with pytest.raises(ImageFileError, match=r"x.png: expected 8x8 pixels, got 8x9"):
        read_png(path, 8)


def test_an_unexpected_file_in_a_split_folder_is_reported(split_root):
    stray = split_root / "train" / "a" / "stray.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(stray)
    with pytest.raises(ImageFileError, match="stray.png: not in the manifest"):
        pack(split_root)


@pytest.mark.parametrize("names", [["NA", "null"], ["nan", "None"], ["007", "1e3"]])
def test_class_names_pandas_would_retype_pack_under_their_own_names(tmp_path, names):
    split_classes(tmp_path, dict.fromkeys(names, 4))
    out = tmp_path / "packed" / "train"
    pack_split(
        images_root=tmp_path,
        manifest_path=tmp_path / "manifest.tsv",
        split="train",
        classes=sorted(names),
        size=8,
        images_out=out / "images.npy",
        labels_out=out / "labels.npy",
        classes_out=out / "classes.json",
    )
    assert json.loads((out / "classes.json").read_text()) == sorted(names)
    assert np.load(out / "labels.npy").tolist() == [0, 0, 0, 1, 1, 1]
