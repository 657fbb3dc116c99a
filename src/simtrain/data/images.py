"""Real images: read PNG, TIFF and JPEG files of any depth and size, convert them to the
pipeline's square greyscale images.

The conversion is deterministic (same file and settings -> same pixels) and happens in this
order, on floats in [0, 1] at the file's own depth:

1. read: PNG and JPEG with Pillow, except 16-bit colour PNGs (pypng: Pillow reduces them to
   8 bits); TIFF with tifffile (first and only page). 8- and 16-bit samples only.
2. greyscale: colour is reduced to luminance L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2,
   Pillow's convert("L") weights); an alpha channel is dropped; a palette is expanded first.
3. square: `aspect="crop"` keeps the centred square of side min(height, width); `aspect="pad"`
   centres the image on a black square of side max(height, width) (Keras'
   `crop_to_aspect_ratio` and `pad_to_aspect_ratio`).
4. resize to size x size with Pillow's Lanczos filter, anti-aliased (its support widens with
   the shrink factor; shrinks beyond 3x first average whole blocks, Pillow's reducing_gap),
   clipped to [0, 1].
5. quantise: round(value * (2**bit_depth - 1)) to uint8 or uint16. A 16-bit file with
   bit_depth 8 is refused, never silently reduced.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ASPECTS = ("crop", "pad")
BIT_DEPTHS = (8, 16)
# Files with these extensions are read; any other file in an image folder is an error.
IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
LUMINANCE = np.array([0.299, 0.587, 0.114])
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageReadError(ValueError):
    """An image file is unreadable, corrupt, of an unsupported kind or too small."""


@dataclass(frozen=True)
class Conversion:
    """How files become the pipeline's images (the config's image_size, bit_depth, ingest)."""

    size: int
    aspect: str = "crop"
    min_size: int = 32
    bit_depth: int = 8

    def __post_init__(self) -> None:
        if self.aspect not in ASPECTS:
            raise ValueError(f"ingest.aspect must be one of {ASPECTS}, got {self.aspect!r}")
        if self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"bit_depth must be one of {BIT_DEPTHS}, got {self.bit_depth!r}")
        if self.size < 1 or self.min_size < 1:
            raise ValueError(f"size and min_size must be >= 1, got {self.size}, {self.min_size}")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bit_depth == 8 else np.uint16)


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _png_header(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) of PNG bytes, or None for another kind of file."""
    if len(data) < 33 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def _read_png16_colour(data: bytes) -> np.ndarray:
    import png  # pypng

    width, height, rows, info = png.Reader(bytes=data).asDirect()
    planes = info["planes"]
    pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return pixels.reshape(height, width, planes) if planes > 1 else pixels.reshape(height, width)


def _read_pillow(data: bytes, path: Path) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        mode = image.mode
        if mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
            image = image.convert("RGBA" if mode == "PA" else ("L" if mode == "1" else "RGB"))
            mode = image.mode
        if mode.startswith("I;16"):
            return np.asarray(image).astype(np.uint16)
        if mode in ("I", "F"):
            raise ImageReadError(
                f"{path}: {'32-bit integer' if mode == 'I' else 'floating-point'} pixels are "
                "not supported; save it as 8- or 16-bit"
            )
        return np.asarray(image, dtype=np.uint8)


def _read_tiff(data: bytes, path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        if len(tiff.pages) != 1:
            raise ImageReadError(
                f"{path}: a TIFF of {len(tiff.pages)} pages; simtrain takes one image per file "
                "(split the stack into files)"
            )
        page = tiff.pages[0]
        pixels = page.asarray()
        photometric = page.photometric
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(
            f"{path}: {pixels.dtype} samples are not supported; save it as 8- or 16-bit unsigned"
        )
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        pixels = np.iinfo(pixels.dtype).max - pixels
    elif photometric == tifffile.PHOTOMETRIC.PALETTE:
        raise ImageReadError(f"{path}: palette TIFFs are not supported; save it as greyscale")
    if pixels.ndim == 3 and pixels.shape[0] in (3, 4) and pixels.shape[-1] not in (3, 4):
        pixels = np.moveaxis(pixels, 0, -1)  # planar (samples, height, width)
    return pixels


def decode_image(data: bytes, path: str | os.PathLike) -> np.ndarray:
    """The pixels of a file's bytes at their own depth: uint8 or uint16, (H, W) or
    (H, W, channels); `path` picks the decoder by extension and names the file in errors."""
    path = Path(path)
    if not is_image_name(path.name):
        raise ImageReadError(
            f"{path}: not an image file name (expected {', '.join(IMAGE_EXTENSIONS)})"
        )
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            pixels = _read_tiff(data, path)
        else:
            header = _png_header(data)
            if header is not None and header[0] == 16 and header[1] != 0:
                pixels = _read_png16_colour(data)
            else:
                pixels = _read_pillow(data, path)
    except ImageReadError:
        raise
    # Pillow raises UnidentifiedImageError, OSError, SyntaxError...; pypng and tifffile
    # raise their own kinds: any failure to decode is the file's fault.
    except Exception as error:
        raise ImageReadError(
            f"{path}: not a readable image ({type(error).__name__}: {error})"
        ) from error
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[-1] not in (1, 2, 3, 4)):
        raise ImageReadError(f"{path}: unexpected pixel array shape {pixels.shape}")
    return pixels


def read_image(path: str | os.PathLike) -> np.ndarray:
    """`decode_image` of a file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageReadError(f"{path}: cannot be read ({error.strerror or error})") from error
    return decode_image(data, path)


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """float32 luminance in [0, 1] of uint8/uint16 pixels (alpha dropped); float32 holds
    16-bit levels exactly (24-bit significand)."""
    scale = np.float32(1 / np.iinfo(pixels.dtype).max)
    if pixels.ndim == 3 and pixels.shape[-1] >= 3:
        weights = (LUMINANCE * scale).astype(np.float32)
        return pixels[..., :3].astype(np.float32) @ weights
    grey = pixels if pixels.ndim == 2 else pixels[..., 0]  # grey, grey + alpha
    return grey.astype(np.float32) * scale


def to_square(grey: np.ndarray, aspect: str) -> np.ndarray:
    """The centred square crop (aspect="crop") or the image centred on black (aspect="pad")."""
    height, width = grey.shape
    if height == width:
        return grey
    if aspect == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return grey[top : top + side, left : left + side]
    side = max(height, width)
    square = np.zeros((side, side), dtype=grey.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = grey
    return square


def resize(square: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased Lanczos resize of a float image to size x size, clipped to [0, 1]."""
    if square.shape == (size, size):
        return square
    image = Image.fromarray(square.astype(np.float32, copy=False), mode="F")
    # reducing_gap: a big shrink first averages whole blocks of pixels (box filter, itself
    # anti-aliasing), then Lanczos resamples at most 3x: much faster on large photographs.
    resized = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.clip(np.asarray(resized), 0.0, 1.0)


def quantise(values: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 2**bit_depth - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(values * top).astype(dtype)


def convert_pixels(pixels: np.ndarray, conversion: Conversion, name: str = "image") -> np.ndarray:
    """Pixels read from a file -> the pipeline's size x size image (see the module docstring)."""
    height, width = pixels.shape[:2]
    if min(height, width) < conversion.min_size:
        raise ImageReadError(
            f"{name}: {width}x{height} pixels is smaller than ingest.min_size "
            f"({conversion.min_size} px on the shorter side)"
        )
    if pixels.dtype == np.uint16 and conversion.bit_depth == 8:
        raise ImageReadError(
            f"{name}: 16-bit image, but bit_depth is 8; set bit_depth: 16 to keep its depth "
            "(simtrain does not reduce 16-bit data to 8 bits)"
        )
    square = to_square(to_grey(pixels), conversion.aspect)
    return quantise(resize(square, conversion.size), conversion.bit_depth)


def convert_image(path: str | os.PathLike, conversion: Conversion) -> np.ndarray:
    """Read and convert one file; ImageReadError names the file when it cannot."""
    return convert_pixels(read_image(path), conversion, name=str(path))
