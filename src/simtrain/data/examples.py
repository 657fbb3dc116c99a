"""Folders of real images for config/real.yaml, cut from photographs scikit-image ships.

    uv run python -m simtrain.data.examples [data/real-example]

scikit-image's `skimage.data` holds texture photographs (grass, gravel, brick: 512 x 512,
8-bit greyscale) and colour photographs (coffee, chelsea, astronaut, rocket), read offline
from the installed package. This writes, deterministically:

- `train/{grass,gravel,brick}/`: 40 tiles each from the left 60 % of each texture photograph,
  squares and oblongs of 72-160 px, saved in turn as 8-bit PNG, colour JPEG, 16-bit greyscale
  TIFF and 16-bit colour TIFF (16-bit tiles carry the 8-bit values times 257);
- `field/{grass,gravel,brick}/`: 16 tiles each from the right 40 % (never seen in training),
  a labelled evaluation set without the simulated class;
- `unlabelled/`: 4 more tiles of each texture and the colour photographs, for prediction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TEXTURES = ("grass", "gravel", "brick")
PHOTOGRAPHS = ("coffee", "chelsea", "astronaut", "rocket")
FORMATS = ("png", "jpg", "tif16", "tif16rgb")


def _tiles(image: np.ndarray, columns: tuple[int, int], count: int, rng) -> list[np.ndarray]:
    """`count` crops of 72-160 px (every third one oblong) inside the given column range."""
    tiles = []
    for i in range(count):
        height = int(rng.integers(72, 161))
        width = height if i % 3 else int(rng.integers(72, 161))
        width = min(width, columns[1] - columns[0])
        top = int(rng.integers(0, image.shape[0] - height + 1))
        left = int(rng.integers(columns[0], columns[1] - width + 1))
        tiles.append(image[top : top + height, left : left + width])
    return tiles


def _save(tile: np.ndarray, path: Path, kind: str) -> Path:
    import tifffile

    if kind == "png":
        path = path.with_suffix(".png")
        Image.fromarray(tile).save(path)
    elif kind == "jpg":
        path = path.with_suffix(".jpg")
        Image.fromarray(np.stack([tile] * 3, axis=-1)).save(path, quality=95)
    elif kind == "tif16":
        path = path.with_suffix(".tif")
        tifffile.imwrite(path, tile.astype(np.uint16) * 257)
    else:
        path = path.with_suffix(".tiff")
        tifffile.imwrite(path, np.stack([tile] * 3, axis=-1).astype(np.uint16) * 257)
    return path


def write_examples(root: str | Path, *, train: int = 40, field: int = 16, seed: int = 0) -> Path:
    """Write the example folders under `root` (see the module docstring); return `root`."""
    from skimage import data

    root = Path(root)
    rng = np.random.default_rng(seed)
    for name in TEXTURES:
        photo = getattr(data, name)()
        split = int(photo.shape[1] * 0.6)
        for folder, columns, count in (
            (root / "train" / name, (0, split), train),
            (root / "field" / name, (split, photo.shape[1]), field),
            (root / "unlabelled", (split, photo.shape[1]), 4),
        ):
            folder.mkdir(parents=True, exist_ok=True)
            for i, tile in enumerate(_tiles(photo, columns, count, rng)):
                stem = f"{name}-{i:03d}" if folder.name == "unlabelled" else f"{i:03d}"
                _save(np.ascontiguousarray(tile), folder / stem, FORMATS[i % len(FORMATS)])
    for name in PHOTOGRAPHS:
        Image.fromarray(getattr(data, name)()).save(root / "unlabelled" / f"{name}.jpg")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="data/real-example", type=Path)
    root = write_examples(parser.parse_args(argv).root)
    print(f"wrote {sum(1 for p in root.rglob('*') if p.is_file())} images under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
