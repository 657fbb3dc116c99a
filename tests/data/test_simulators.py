import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from simtrain.data import simulators
from simtrain.data.simulators import (
    BUILTIN_SIMULATORS,
    SimulatorError,
    resolve_simulator,
    simulator_source_file,
    to_uint8,
)

SIZE = 64
FAMILIES = sorted(BUILTIN_SIMULATORS)


def simulate(name: str, seed: int = 0, size: int = SIZE, **params) -> np.ndarray:
    return BUILTIN_SIMULATORS[name](np.random.default_rng(seed), size, **params)


def spectrum_features(image: np.ndarray, bands: int = 8, orientations: int = 8) -> np.ndarray:
    """Log share of power per radial frequency band, then per orientation sorted strongest first
    (so a grating's single orientation counts the same at any angle)."""
    power = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean()))) ** 2
    y, x = np.indices(power.shape) - image.shape[0] // 2
    band = np.minimum((np.hypot(y, x) / (image.shape[0] / 2) * bands).astype(int), bands - 1)
    orientation = ((np.arctan2(y, x) % np.pi) / np.pi * orientations).astype(int) % orientations
    radial = np.bincount(band.ravel(), power.ravel(), minlength=bands)
    angular = np.sort(np.bincount(orientation.ravel(), power.ravel(), minlength=orientations))
    return np.log(np.concatenate([radial, angular[::-1]]) / power.sum() + 1e-4)


@pytest.fixture(autouse=True)
def restore_sys_path(monkeypatch):
    """resolve_simulator edits sys.path; undo it after every test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def plugin(tmp_path):
    """Writes a uniquely named plug-in module into tmp_path; forgets it after the test."""
    name = f"plugin_{uuid.uuid4().hex}"

    def write(source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        return name

    yield write
    sys.modules.pop(name, None)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_builtin_returns_a_square_float_image_in_unit_range(name):
    image = simulate(name)
    assert image.shape == (SIZE, SIZE)
    assert image.dtype == np.float64
    assert 0 <= image.min() < image.max() <= 1


@pytest.mark.parametrize("name", FAMILIES)
def test_every_builtin_is_deterministic_for_a_seed_and_differs_between_seeds(name):
    np.testing.assert_array_equal(simulate(name, seed=3), simulate(name, seed=3))
    assert not np.array_equal(simulate(name, seed=3), simulate(name, seed=4))


@pytest.mark.parametrize("name", FAMILIES)
def test_every_builtin_meets_the_output_contract_even_without_noise(name):
    pixels = to_uint8(simulate(name, noise=0.0), class_name="c", simulator=name, size=SIZE)
    assert pixels.dtype == np.uint8
    assert pixels.std() > 5


@pytest.mark.parametrize("name", FAMILIES)
def test_zero_contrast_and_zero_noise_give_a_constant_image_that_is_rejected(name):
    image = simulate(name, contrast=0.0, noise=0.0)
    with pytest.raises(SimulatorError, match="constant image"):
        to_uint8(image, class_name="c", simulator=name, size=SIZE)


@pytest.mark.parametrize("name", FAMILIES)
def test_more_noise_gives_a_larger_residual_with_the_same_structure(name):
    clean = simulate(name, seed=5, noise=0.0)
    residual_std = [(simulate(name, seed=5, noise=n) - clean).std() for n in (0.02, 0.1)]
    assert 0.015 < residual_std[0] < residual_std[1] < 0.12


@pytest.mark.parametrize("name", FAMILIES)
def test_more_contrast_gives_a_larger_pixel_spread(name):
    spread = [simulate(name, seed=5, noise=0.0, contrast=c).std() for c in (0.2, 0.8)]
    assert 3 * spread[0] < spread[1]


@pytest.mark.parametrize("name", FAMILIES)
def test_an_unknown_keyword_is_a_type_error(name):
    with pytest.raises(TypeError, match="colour"):
        simulate(name, colour=1)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("blobs", {"radius": -0.1}, "radius must be > 0"),
        ("blobs", {"count": [5, 2, 1]}, "count must be an int"),
        ("rings", {"width": [0.02, 0.01]}, "width range must have low <= high"),
        ("grating", {"contrast": 1.5}, r"contrast must lie in \[0, 1\]"),
        ("lattice", {"noise": -0.1}, "noise must be >= 0"),
        ("streaks", {"angle_spread": -1}, "angle_spread must be >= 0"),
    ],
)
def test_an_out_of_range_knob_is_a_value_error_naming_it(name, params, message):
    with pytest.raises(ValueError, match=message):
        simulate(name, **params)


def test_range_knobs_accept_yaml_style_lists():
    image = simulate("streaks", count=[2, 4], length=[0.2, 0.3], width=[0.01, 0.02])
    assert image.shape == (SIZE, SIZE)


def test_families_are_told_apart_by_their_power_spectrum():
    # Nearest centroid on spectrum features: fit on seeds 0-7, classify unseen seeds 100-107.
    def features(name, seed):
        return spectrum_features(simulate(name, seed=seed, size=128, noise=0.0))

    centroids = np.array([[features(n, s) for s in range(8)] for n in FAMILIES]).mean(axis=1)
    for name in FAMILIES:
        for seed in range(100, 108):
            distances = np.linalg.norm(centroids - features(name, seed), axis=1)
            nearest = FAMILIES[distances.argmin()]
            assert nearest == name, f"{name} seed {seed} looks like {nearest}"


def test_a_grating_with_zero_spread_varies_only_along_its_angle():
    image = simulate("grating", noise=0.0, angle=0.0, angle_spread=0.0)
    assert image.std(axis=0).max() < 1e-9  # constant down each column
    assert image.std(axis=1).min() > 0.1


def test_streaks_with_zero_spread_put_their_energy_on_one_orientation():
    image = simulate("streaks", size=128, noise=0.0, angle=90.0, angle_spread=0.0)
    # Vertical lines: intensity changes from column to column, barely from row to row.
    across = np.abs(np.diff(image, axis=1)).sum()
    along = np.abs(np.diff(image, axis=0)).sum()
    assert across > 5 * along


def test_a_builtin_name_resolves_to_its_function():
    assert resolve_simulator("rings") is simulators.rings


def test_a_plugin_in_the_working_directory_resolves_via_search_path(plugin, tmp_path):
    module = plugin(
        "import numpy as np\ndef make(rng, size):\n    return rng.random((size, size))\n"
    )
    make = resolve_simulator(f"{module}:make", search_path=tmp_path)
    assert make(np.random.default_rng(0), 8).shape == (8, 8)
    assert sys.path[0] == str(tmp_path)


def test_resolving_twice_does_not_repeat_the_search_path(plugin, tmp_path):
    module = plugin("def make(rng, size):\n    return None\n")
    resolve_simulator(f"{module}:make", search_path=tmp_path)
    resolve_simulator(f"{module}:make", search_path=tmp_path)
    assert sys.path.count(str(tmp_path)) == 1


def test_an_unknown_builtin_lists_the_known_names_and_the_plugin_syntax():
    with pytest.raises(
        SimulatorError, match=r"unknown simulator 'spirals'.*blobs.*module:function"
    ):
        resolve_simulator("spirals")


@pytest.mark.parametrize("spec", ["a:b:c", "mod:", ":make", "my-mod:make", "pkg..mod:make"])
def test_a_malformed_plugin_spec_is_rejected(spec):
    with pytest.raises(SimulatorError, match="malformed simulator"):
        resolve_simulator(spec)


def test_an_unimportable_module_reports_the_import_error(tmp_path):
    name = f"missing_{uuid.uuid4().hex}"
    with pytest.raises(SimulatorError, match=f"cannot import module '{name}'.*No module named"):
        resolve_simulator(f"{name}:make", search_path=tmp_path)


def test_a_missing_attribute_names_the_module_and_the_attribute(plugin, tmp_path):
    module = plugin("def make(rng, size):\n    return None\n")
    with pytest.raises(SimulatorError, match=f"module '{module}'.*has no attribute 'draw'"):
        resolve_simulator(f"{module}:draw", search_path=tmp_path)


def test_a_non_callable_attribute_is_rejected(plugin, tmp_path):
    module = plugin("make = 3\n")
    with pytest.raises(SimulatorError, match="'make' is a int, not callable"):
        resolve_simulator(f"{module}:make", search_path=tmp_path)


def test_the_source_of_a_builtin_is_the_simulators_module():
    source = simulator_source_file("blobs")
    assert Path(source).resolve() == Path(simulators.__file__).resolve()


def test_the_source_of_a_plugin_is_its_module_file(plugin, tmp_path):
    module = plugin("def make(rng, size):\n    return None\n")
    source = simulator_source_file(f"{module}:make", search_path=tmp_path)
    assert source == str(tmp_path / f"{module}.py")


def test_the_source_of_an_unfindable_plugin_is_none(tmp_path):
    assert simulator_source_file(f"missing_{uuid.uuid4().hex}.sub:make", tmp_path) is None


def contract_error(image: object) -> str:
    with pytest.raises(SimulatorError) as raised:
        to_uint8(image, class_name="rings", simulator="mymod:make", size=4)
    message = str(raised.value)
    assert message.startswith("class 'rings' (simulator 'mymod:make'): ")
    return message


def test_a_wrong_shape_is_rejected_with_the_shape():
    assert "expected a 4x4 array, got shape (3, 4)" in contract_error(np.zeros((3, 4)))


def test_a_three_dimensional_array_is_rejected():
    assert "got shape (4, 4, 3)" in contract_error(np.zeros((4, 4, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_rejected(bad):
    image = np.linspace(0, 1, 16).reshape(4, 4)
    image[1, 2] = bad
    assert "contains NaN or inf" in contract_error(image)


def test_floats_outside_the_unit_range_are_rejected_with_min_and_max():
    image = np.linspace(-0.2, 1.3, 16).reshape(4, 4)
    assert "float values must lie in [0, 1], got min -0.2 max 1.3" in contract_error(image)


def test_a_constant_float_image_is_rejected_with_its_value():
    assert "constant image (every pixel 0.5 -> 128)" in contract_error(np.full((4, 4), 0.5))


def test_a_float_image_that_rounds_to_one_grey_level_is_rejected():
    image = np.full((4, 4), 0.5)
    image[0, 0] = 0.5001
    assert "constant image" in contract_error(image)


def test_a_constant_uint8_image_is_rejected():
    assert "constant image (every pixel 7)" in contract_error(np.full((4, 4), 7, dtype=np.uint8))


def test_a_list_is_rejected_as_not_an_array():
    assert "returned list, expected a numpy array" in contract_error([[0.0, 1.0]] * 4)


@pytest.mark.parametrize("dtype", [bool, np.int64, np.uint16, np.complex128])
def test_non_uint8_non_float_dtypes_are_rejected(dtype):
    image = (np.arange(16).reshape(4, 4) % 2).astype(dtype)
    assert f"has dtype {np.dtype(dtype)}" in contract_error(image)


def test_a_uint8_image_passes_through_unchanged():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert to_uint8(image, class_name="c", simulator="s", size=4) is image


def test_floats_are_scaled_exactly_to_uint8():
    image = np.array([[0.0, 1.0], [0.5, 0.25]])
    pixels = to_uint8(image, class_name="c", simulator="s", size=2)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, [[0, 255], [128, 64]])


def test_float32_images_are_accepted():
    image = np.array([[0.0, 1.0], [0.5, 0.25]], dtype=np.float32)
    np.testing.assert_array_equal(
        to_uint8(image, class_name="c", simulator="s", size=2), [[0, 255], [128, 64]]
    )
