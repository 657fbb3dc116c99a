"""Reading and converting real images: photographs scikit-image ships, generated 16-bit TIFFs
and PNGs, colour JPEGs, and files that must be refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import png
import pytest
import skimage
import tifffile
from PIL import Image

from simtrain.data.images import (
    Conversion,
    ImageReadError,
    convert_image,
    convert_pixels,
    read_image,
)

# Files inside the installed scikit-image: real photographs, read offline.
SHIPPED = Path(skimage.__file__).parent / "data"


def test_shipped_photographs_become_square_greyscale_images_deterministically():
    conversion = Conversion(size=48)
    for name in ("camera.png", "astronaut.png", "coffee.png", "rocket.jpg", "logo.png"):
        first = convert_image(SHIPPED / name, conversion)
        assert first.shape == (48, 48) and first.dtype == np.uint8, name
        assert first.std() > 5, name  # a picture, not a flat field
        np.testing.assert_array_equal(first, convert_image(SHIPPED / name, conversion))


def test_a_greyscale_photograph_at_its_own_size_is_unchanged():
    camera = np.asarray(Image.open(SHIPPED / "camera.png"))
    np.testing.assert_array_equal(convert_image(SHIPPED / "camera.png", Conversion(512)), camera)


def test_colour_becomes_luminance_with_pillows_weights():
    astronaut = np.asarray(Image.open(SHIPPED / "astronaut.png").convert("RGB"))
    grey = convert_pixels(astronaut, Conversion(512))
    pillow = np.asarray(Image.open(SHIPPED / "astronaut.png").convert("L"))
    assert np.abs(grey.astype(int) - pillow).max() <= 1


def test_crop_keeps_the_centred_square_and_pad_centres_on_black():
    coffee = read_image(SHIPPED / "coffee.png")  # 400 x 600 colour
    assert coffee.shape == (400, 600, 3)
    cropped = convert_pixels(coffee, Conversion(400, aspect="crop"))
    expected = convert_pixels(coffee[:, 100:500], Conversion(400))
    np.testing.assert_array_equal(cropped, expected)
    padded = convert_pixels(coffee, Conversion(60, aspect="pad"))  # 600 -> 60: 100 -> 10 rows
    assert padded[:7].max() == 0 and padded[-7:].max() == 0  # black bars above and below
    assert padded[15:45].mean() > 20


def test_downsizing_is_anti_aliased():
    checkerboard = (np.indices((256, 256)).sum(axis=0) % 2 * 255).astype(np.uint8)
    small = convert_pixels(checkerboard, Conversion(32))
    # One-pixel stripes average out to mid-grey; without anti-aliasing they alias into
    # black and white.
    assert abs(float(small.mean()) - 127.5) < 2 and small.std() < 2


def test_16_bit_tiffs_keep_their_depth(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 65536, (40, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    converted = convert_image(tmp_path / "grey.tif", Conversion(40, bit_depth=16))
    assert converted.dtype == np.uint16
    np.testing.assert_array_equal(converted, grey)  # not reduced to 256 levels
    assert len(np.unique(converted)) > 1000

    colour = rng.integers(0, 65536, (40, 50, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "colour.tiff", colour, photometric="rgb")
    converted = convert_image(tmp_path / "colour.tiff", Conversion(40, bit_depth=16))
    luminance = colour[:, 5:45].astype(float) @ [0.299, 0.587, 0.114]
    assert np.abs(converted.astype(float) - luminance).max() <= 1


def test_16_bit_pngs_keep_their_depth_in_grey_and_colour(tmp_path):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 65536, (36, 36), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(
        convert_image(tmp_path / "grey.png", Conversion(36, bit_depth=16)), grey
    )
    colour = rng.integers(0, 65536, (36, 36, 3), dtype=np.uint16)
    png.from_array(colour.reshape(36, -1), "RGB;16").save(tmp_path / "colour.png")
    np.testing.assert_array_equal(read_image(tmp_path / "colour.png"), colour)


def test_a_16_bit_image_is_refused_at_bit_depth_8(tmp_path):
    tifffile.imwrite(tmp_path / "deep.tif", np.full((40, 40), 1000, dtype=np.uint16))
    with pytest.raises(ImageReadError, match=r"deep.tif: 16-bit image, but bit_depth is 8"):
        convert_image(tmp_path / "deep.tif", Conversion(32))


def test_an_8_bit_image_at_bit_depth_16_spans_the_same_range():
    converted = convert_image(SHIPPED / "camera.png", Conversion(512, bit_depth=16))
    camera = np.asarray(Image.open(SHIPPED / "camera.png")).astype(np.uint32)
    np.testing.assert_array_equal(converted, camera * 257)


def test_colour_jpegs_are_read(tmp_path):
    astronaut = np.asarray(Image.open(SHIPPED / "astronaut.png").convert("RGB"))
    Image.fromarray(astronaut).save(tmp_path / "astronaut.jpeg", quality=90)
    assert read_image(tmp_path / "astronaut.jpeg").shape == (512, 512, 3)
    assert convert_image(tmp_path / "astronaut.jpeg", Conversion(64)).shape == (64, 64)


def test_images_below_the_minimum_size_are_named():
    # microaneurysms.png is 102 x 102
    with pytest.raises(ImageReadError, match=r"microaneurysms.png: 102x102 pixels is smaller"):
        convert_image(SHIPPED / "microaneurysms.png", Conversion(64, min_size=128))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("truncated.png", (SHIPPED / "camera.png").read_bytes()[:3000], "not a readable image"),
        ("text.jpg", b"this is not a picture", "not a readable image"),
        ("notes.txt", b"hello", "not an image file name"),
    ],
)
def test_corrupt_and_non_image_files_are_named(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageReadError, match=rf"{name}: {message}"):
        convert_image(tmp_path / name, Conversion(32))


def test_multi_page_and_float_tiffs_are_refused(tmp_path):
    shutil.copy(SHIPPED / "multipage.tif", tmp_path / "stack.tif")
    with pytest.raises(ImageReadError, match=r"stack.tif: a TIFF of 2 pages"):
        convert_image(tmp_path / "stack.tif", Conversion(32))
    tifffile.imwrite(tmp_path / "float.tif", np.ones((40, 40), dtype=np.float32))
    with pytest.raises(ImageReadError, match=r"float.tif: float32 samples are not supported"):
        convert_image(tmp_path / "float.tif", Conversion(32))
