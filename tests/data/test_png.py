import io

import numpy as np
import pytest
from PIL import Image

from simtrain.data.png import encode_png, write_png


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (256, 256)])
def test_png_round_trips_through_pillow(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png(image)))
    assert decoded.mode == "L" and decoded.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(decoded), image)


def test_smooth_images_are_compressed(tmp_path):
    from simtrain.data.simulators import blobs, to_uint8

    smooth = blobs(np.random.default_rng(0), 256, noise=0.0)
    image = to_uint8(smooth, class_name="blobs", simulator="blobs", size=256)
    write_png(tmp_path / "x.png", image)
    assert (tmp_path / "x.png").stat().st_size < image.size / 2
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.png")), image)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 1), np.uint8)])
def test_only_2d_uint8_arrays_are_encoded(bad):
    with pytest.raises(ValueError, match="2-D uint8"):
        encode_png(bad)
