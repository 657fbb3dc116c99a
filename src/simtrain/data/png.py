"""A minimal greyscale PNG writer, ~4x faster than Pillow on simulated images; 8-bit, and
16-bit for real images kept at their depth.

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
    """PNG bytes of a 2-D uint8 or uint16 array (greyscale, bit depth 8 or 16, filter 'none')."""
    if image.dtype not in (np.uint8, np.uint16) or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 or uint16 array, got {image.dtype} {image.shape}")
    height, width = image.shape
    depth = 8 * image.dtype.itemsize
    # PNG stores 16-bit samples big-endian.
    samples = image.astype(">u2").view(np.uint8) if depth == 16 else image
    rows = np.zeros((height, samples.shape[1] + 1), np.uint8)  # column 0: each row's filter
    rows[:, 1:] = samples
    compressor = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = compressor.compress(rows.tobytes()) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    with open(path, "wb") as handle:
        handle.write(encode_png(image))
