"""Built-in image simulators, plug-in resolution and the simulator output contract.

A simulator is any callable ``f(rng, size, **params)`` returning a ``size`` x ``size`` greyscale
image, float in [0, 1] or uint8. Every built-in draws structure in [0, 1], centres it, scales it by
``contrast`` over a ``background`` level, adds Gaussian pixel noise of std ``noise`` and clips to
[0, 1]. Lengths are fractions of ``size`` (so one config works at any image size) and take a
number or a ``[low, high]`` range drawn uniformly; counts take an int or an inclusive
``[low, high]`` range; angles are degrees from the x axis.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from simtrain.common.plugins import (
    PLUGIN_SYNTAX,
    PluginError,
    add_search_path,  # noqa: F401 - re-exported: the name other modules have imported
    is_plugin,
    plugin_source_file,
    resolve_plugin,
)

Span = float | Sequence[float]
Simulator = Callable[..., np.ndarray]

MIN_SIGMA = 0.5  # pixels: a thinner Gaussian falls between pixel centres and can vanish


class SimulatorError(ValueError):
    """A simulator cannot be resolved, or its output breaks the output contract."""


def _draw(rng: np.random.Generator, name: str, value: Span, n: int, positive: bool) -> np.ndarray:
    """n values of a knob given as a number or a [low, high] range."""
    bounds = np.asarray(value, dtype=float)
    if bounds.shape not in ((), (2,)) or not np.isfinite(bounds).all():
        raise ValueError(f"{name} must be a number or a [low, high] range, got {value!r}")
    low, high = bounds.min(), bounds.max()
    if bounds.shape == (2,) and bounds[0] > bounds[1]:
        raise ValueError(f"{name} range must have low <= high, got {value!r}")
    if low < 0 or (positive and low == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return np.full(n, float(low)) if low == high else rng.uniform(low, high, n)


def _count(rng: np.random.Generator, value: int | Sequence[int]) -> int:
    """Number of objects: an int or an inclusive [low, high] range."""
    bounds = np.asarray(value)
    if bounds.dtype.kind not in "iu" or bounds.shape not in ((), (2,)) or bounds.min() < 0:
        raise ValueError(f"count must be an int >= 0 or a [low, high] range, got {value!r}")
    return int(bounds) if bounds.shape == () else int(rng.integers(*bounds, endpoint=True))


def _angles(rng: np.random.Generator, angle: float, angle_spread: float, n: int) -> np.ndarray:
    """n angles in radians, uniform in angle +- angle_spread degrees."""
    if angle_spread < 0:
        raise ValueError(f"angle_spread must be >= 0, got {angle_spread!r}")
    return np.deg2rad(angle + rng.uniform(-angle_spread, angle_spread, n))


def _compose(rng, structure: np.ndarray, background, contrast, noise) -> np.ndarray:
    """background + contrast * centred structure + pixel noise, clipped to [0, 1]."""
    for name, value in (("background", background), ("contrast", contrast)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    # Centring keeps the mean grey level the same across families: it is no class cue.
    image = structure - structure.mean()
    image *= contrast
    image += background
    # Noise is drawn last, so the same seed gives the same structure at every noise level.
    image += noise * rng.standard_normal(structure.shape, dtype=np.float32)
    return np.clip(image, 0.0, 1.0, out=image)


def _gaussian_dots(size: int, ys: np.ndarray, xs: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Isotropic Gaussian dots of peak 1, summed from separable profiles and capped at 1."""
    axis = np.arange(size, dtype=np.float32)
    scale = (-0.5 / np.maximum(sigmas, MIN_SIGMA)[:, None] ** 2).astype(np.float32)
    rows = np.exp((axis - ys[:, None].astype(np.float32)) ** 2 * scale)
    cols = np.exp((axis - xs[:, None].astype(np.float32)) ** 2 * scale)
    # float32 halves the cost of the product, the bulk of the work for a dense lattice.
    return np.minimum(rows.T @ cols, 1.0, dtype=np.float64)


def _window(size: int, cy: float, cx: float, half_y: float, half_x: float):
    """Slices of the image around (cy, cx) and pixel offsets from it (rows, cols, dy, dx)."""
    y0, y1 = max(int(cy - half_y), 0), max(min(int(cy + half_y) + 2, size), 0)
    x0, x1 = max(int(cx - half_x), 0), max(min(int(cx + half_x) + 2, size), 0)
    dy = np.arange(y0, y1, dtype=float)[:, None] - cy
    dx = np.arange(x0, x1, dtype=float)[None, :] - cx
    return slice(y0, y1), slice(x0, x1), dy, dx


def blobs(
    rng: np.random.Generator,
    size: int,
    *,
    count: int | Sequence[int] = (4, 12),
    radius: Span = (0.02, 0.06),
    background: float = 0.5,
    contrast: float = 0.5,
    noise: float = 0.05,
) -> np.ndarray:
    """Gaussian blobs at random positions; count blobs, radius = Gaussian sigma per blob."""
    n = _count(rng, count)
    sigmas = _draw(rng, "radius", radius, n, positive=True) * size
    ys, xs = rng.uniform(0, size, (2, n))
    return _compose(rng, _gaussian_dots(size, ys, xs, sigmas), background, contrast, noise)


def rings(
    rng: np.random.Generator,
    size: int,
    *,
    count: int | Sequence[int] = (2, 5),
    radius: Span = (0.05, 0.15),
    width: Span = 0.008,
    background: float = 0.5,
    contrast: float = 0.5,
    noise: float = 0.05,
) -> np.ndarray:
    """Scattered thin rings; count rings, radius of each ring, width = cross-section sigma."""
    n = _count(rng, count)
    radii = _draw(rng, "radius", radius, n, positive=True) * size
    widths = np.maximum(_draw(rng, "width", width, n, positive=True) * size, MIN_SIGMA)
    ys, xs = rng.uniform(0, size, (2, n))
    canvas = np.zeros((size, size))
    for cy, cx, r, w in zip(ys, xs, radii, widths, strict=True):
        rows, cols, dy, dx = _window(size, cy, cx, r + 3 * w, r + 3 * w)
        ring = np.exp(-0.5 * ((np.hypot(dy, dx) - r) / w) ** 2)
        np.maximum(canvas[rows, cols], ring, out=canvas[rows, cols])  # overlaps stay <= 1
    return _compose(rng, canvas, background, contrast, noise)


def streaks(
    rng: np.random.Generator,
    size: int,
    *,
    count: int | Sequence[int] = (3, 8),
    length: Span = (0.15, 0.4),
    width: Span = 0.006,
    angle: float = 0.0,
    angle_spread: float = 90.0,
    background: float = 0.5,
    contrast: float = 0.5,
    noise: float = 0.05,
) -> np.ndarray:
    """Line segments; count, length, width = cross-section sigma, angle +- angle_spread degrees."""
    n = _count(rng, count)
    lengths = _draw(rng, "length", length, n, positive=True) * size
    widths = np.maximum(_draw(rng, "width", width, n, positive=True) * size, MIN_SIGMA)
    thetas = _angles(rng, angle, angle_spread, n)
    ys, xs = rng.uniform(0, size, (2, n))
    canvas = np.zeros((size, size))
    for cy, cx, half_length, w, theta in zip(ys, xs, lengths / 2, widths, thetas, strict=True):
        cos, sin = np.cos(theta), np.sin(theta)
        half_y, half_x = half_length * abs(sin) + 3 * w, half_length * abs(cos) + 3 * w
        rows, cols, dy, dx = _window(size, cy, cx, half_y, half_x)
        # Distance to the segment: project onto its axis, clamp to its ends.
        t = np.clip(dx * cos + dy * sin, -half_length, half_length)
        line = np.exp(-0.5 * ((dx - t * cos) ** 2 + (dy - t * sin) ** 2) / w**2)
        np.maximum(canvas[rows, cols], line, out=canvas[rows, cols])
    return _compose(rng, canvas, background, contrast, noise)


def grating(
    rng: np.random.Generator,
    size: int,
    *,
    wavelength: Span = (0.04, 0.08),
    angle: float = 0.0,
    angle_spread: float = 90.0,
    background: float = 0.5,
    contrast: float = 0.5,
    noise: float = 0.05,
) -> np.ndarray:
    """Sinusoidal grating; wavelength = period, angle +- angle_spread = direction; random phase."""
    period = _draw(rng, "wavelength", wavelength, 1, positive=True)[0] * size
    theta = _angles(rng, angle, angle_spread, 1)[0]
    phase = rng.uniform(0, 2 * np.pi)
    k = 2 * np.pi / period
    axis = np.arange(size, dtype=float)
    along_x, along_y = k * np.cos(theta) * axis + phase, k * np.sin(theta) * axis
    # sin(a + b) = sin a cos b + cos a sin b: two outer products instead of size**2 sines.
    wave = np.outer(np.cos(along_y), np.sin(along_x)) + np.outer(np.sin(along_y), np.cos(along_x))
    return _compose(rng, 0.5 + 0.5 * wave, background, contrast, noise)


def lattice(
    rng: np.random.Generator,
    size: int,
    *,
    spacing: Span = 0.08,
    jitter: Span = 0.1,
    radius: Span = 0.015,
    angle: float = 0.0,
    angle_spread: float = 45.0,
    background: float = 0.5,
    contrast: float = 0.5,
    noise: float = 0.05,
) -> np.ndarray:
    """Dot lattice, random offset; spacing, jitter = position std / spacing, radius = dot sigma."""
    step = _draw(rng, "spacing", spacing, 1, positive=True)[0] * size
    spread = _draw(rng, "jitter", jitter, 1, positive=False)[0] * step
    sigma = _draw(rng, "radius", radius, 1, positive=True)[0] * size
    theta = _angles(rng, angle, angle_spread, 1)[0]
    offset = rng.uniform(0, step, 2)
    # Enough lattice rows to cover the image's circumscribed circle at any rotation.
    reach = int(np.ceil(size / np.sqrt(2) / step)) + 1
    i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1))
    u, v = i.ravel() * step + offset[0], j.ravel() * step + offset[1]
    xs = size / 2 + u * np.cos(theta) - v * np.sin(theta) + spread * rng.standard_normal(u.size)
    ys = size / 2 + u * np.sin(theta) + v * np.cos(theta) + spread * rng.standard_normal(u.size)
    margin = 3 * max(sigma, MIN_SIGMA)
    keep = (xs > -margin) & (xs < size + margin) & (ys > -margin) & (ys < size + margin)
    dots = _gaussian_dots(size, ys[keep], xs[keep], np.full(keep.sum(), sigma))
    return _compose(rng, dots, background, contrast, noise)


BUILTIN_SIMULATORS: dict[str, Simulator] = {
    simulator.__name__: simulator for simulator in (blobs, rings, streaks, grating, lattice)
}


def _check_name(name: str) -> bool:
    """True for a plug-in spec, False for a built-in name; SimulatorError otherwise."""
    if not isinstance(name, str):
        raise SimulatorError(f"simulator must be a string, got {type(name).__name__}")
    if is_plugin(name):
        return True
    if name not in BUILTIN_SIMULATORS:
        known = ", ".join(sorted(BUILTIN_SIMULATORS))
        raise SimulatorError(
            f"unknown simulator {name!r}: built-ins are {known}; "
            f"a plug-in is written {PLUGIN_SYNTAX}"
        )
    return False


def resolve_simulator(name: str, search_path: str | os.PathLike | None = None) -> Simulator:
    """The simulator called name: a built-in, or a plug-in 'package.module:function'."""
    if not _check_name(name):
        return BUILTIN_SIMULATORS[name]
    try:
        return resolve_plugin(name, "simulator", search_path)
    except PluginError as error:
        raise SimulatorError(str(error)) from error


def simulator_source_file(name: str, search_path: str | os.PathLike | None = None) -> str | None:
    """The .py file defining the simulator (a workflow input, so edits rerun simulation)."""
    if not _check_name(name):
        return os.path.abspath(__file__)
    try:
        return plugin_source_file(name, "simulator", search_path)
    except PluginError as error:
        raise SimulatorError(str(error)) from error


def to_uint8(image: object, *, class_name: str, simulator: str, size: int) -> np.ndarray:
    """A simulator's output as a uint8 image, or SimulatorError naming what is wrong."""
    where = f"class {class_name!r} (simulator {simulator!r})"
    if not isinstance(image, np.ndarray):
        raise SimulatorError(f"{where}: returned {type(image).__name__}, expected a numpy array")
    if image.shape != (size, size):
        raise SimulatorError(f"{where}: expected a {size}x{size} array, got shape {image.shape}")
    if image.dtype == np.uint8:
        pixels = image
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise SimulatorError(f"{where}: contains NaN or inf")
        low, high = image.min(), image.max()
        if low < 0 or high > 1:
            raise SimulatorError(
                f"{where}: float values must lie in [0, 1], got min {low:.4g} max {high:.4g}"
            )
        pixels = np.round(image * 255).astype(np.uint8)
    else:
        raise SimulatorError(f"{where}: has dtype {image.dtype}, expected uint8 or float in [0, 1]")
    if pixels.min() == pixels.max():
        value = (
            f"{pixels.flat[0]}" if pixels is image else f"{image.flat[0]:.4g} -> {pixels.flat[0]}"
        )
        raise SimulatorError(f"{where}: returned a constant image (every pixel {value})")
    return pixels
