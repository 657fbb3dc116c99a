"""Images as the model sees them: the bilinear warp smooths training images, nearest does not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from simtrain.reporting.model_view import model_inputs, pixel_noise, plot_model_view
from simtrain.training.models import build_model
from tests.packed_data import make_packed

AUGMENTATION = {"shear": 0.2, "zoom": 0.2, "horizontal_flip": True}


def noisy_images(n=16, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 1), dtype=np.uint8)


def model(interpolation):
    return build_model(
        "small_cnn",
        image_size=32,
        num_classes=3,
        augmentation={**AUGMENTATION, "interpolation": interpolation},
        standardize=True,
        seed=0,
    )


def noise_gap(interpolation, images):
    """1 - training pixel noise / validation pixel noise, as the model sees the images."""
    warped = model(interpolation)
    train_noise = pixel_noise(model_inputs(warped, images, training=True)).mean()
    return 1 - train_noise / pixel_noise(model_inputs(warped, images, training=False)).mean()


def test_bilinear_warp_smooths_pixel_noise_that_validation_keeps():
    assert noise_gap("bilinear", noisy_images()) > 0.1


def test_nearest_warp_keeps_pixel_values_and_most_of_their_noise():
    images = noisy_images()
    # Nearest copies pixels: only magnified images repeat a few neighbours.
    assert noise_gap("nearest", images) < 0.5 * noise_gap("bilinear", images)
    warped = model_inputs(model("nearest"), images, training=True)
    plain = model_inputs(model("nearest"), images, training=False)
    assert warped.std() == pytest.approx(plain.std(), rel=0.02)


def test_model_view_figure_is_written_for_a_saved_model(tmp_path):
    packed = make_packed(tmp_path / "data")
    path = tmp_path / "model.keras"
    model("bilinear").save(path)
    out = tmp_path / "view.png"
    plot_model_view(path, packed / "train", packed / "validation", out, per_class=2, title="run")
    with Image.open(out) as figure:
        pixels = np.asarray(figure.convert("L"))
    assert pixels.shape[0] > 200 and pixels.std() > 10
    assert not list(tmp_path.glob("*.tmp*"))
