"""A minimal 8-bit greyscale PNG writer, ~4x faster than Pillow on simulated images.

Simulated images are mostly pixel noise, which no PNG filter or LZ77 match helps with:
Pillow spends ~2.3 ms per 256x256 image trying (filters + zlib) to save ~2 %. Writing
unfiltered rows with zlib's run-length strategy takes ~0.6 ms, still compresses smooth
images (~3x for a noise-free 256x256 blobs image), and is a standard PNG that every
reader opens. Measured by benchmarks/simulate.py.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a 2-D uint8 array (colour type 0, bit depth 8, filter 'none')."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 array, got {image.dtype} {image.shape}")
    height, width = image.shape
    rows = np.zeros((height, width + 1), np.uint8)  # column 0: each row's filter byte
    rows[:, 1:] = image
    compressor = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = compressor.compress(rows.tobytes()) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    with open(path, "wb") as handle:
        handle.write(encode_png(image))
