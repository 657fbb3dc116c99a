"""Images/s delivered to the model input: the original case's pipeline against ours.

Command (the legacy generator comes from tf-keras, a dev dependency):

    uv run python benchmarks/input_pipeline.py [--images 3000] [--size 256]

On the same PNG folders (simulated with the default config's classes) and batch size 128:

- original, augmented: tf_keras `ImageDataGenerator(samplewise_center, samplewise_std_
  normalization, shear_range=0.2, zoom_range=0.2, horizontal_flip=True).flow_from_directory(
  color_mode="grayscale")`, with and without the original's `save_to_dir` (every augmented
  image written to disk);
- original, no augmentation: the same with standardisation only (the original validation path);
- `keras.utils.image_dataset_from_directory` on the same folders;
- ours, delivery: `simtrain.training.batches.PackedBatches` from the packed uint8 `.npy`
  by memory map;
- ours, augmented: the same batches through the model's preprocessing layers in training mode
  (fused shear/zoom/flip warp + per-image standardisation), so augmentation cost is counted;
- three separate Keras layers (RandomShear, RandomZoom, RandomFlip) instead of the fused warp.

Each method runs one untimed batch, then serves every image once (--repeat times, best
counts). Targets on one CPU: ours augmented >= 5x original augmented; ours delivery >= 10x
original without augmentation. One JSON line is appended to --results.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, add_results_argument, append_result, format_table, positive_int

BATCH = 128


def make_data(root: Path, images: int, size: int) -> tuple[Path, Path]:
    """PNG folders train/<class>/ plus the packed arrays of the same images."""
    from simtrain.data.pack import pack_split
    from simtrain.data.simulate import write_shard
    from simtrain.data.split import split_dataset

    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    classes = config["classes"]
    per_class = math.ceil(images / len(classes))
    shards = []
    for name, spec in classes.items():
        shard = root / "all" / name / "shard-0"
        write_shard(
            shard,
            class_name=name,
            simulator=spec["simulator"],
            params=spec.get("params", {}),
            seed=0,
            size=size,
            indices=range(per_class),
        )
        shards.append(shard)
    # A tiny validation fraction: the benchmark reads the training folders.
    split_dataset(
        shards,
        images_root=root,
        manifest_path=root / "manifest.tsv",
        validation_fraction=1 / per_class,
        seed=0,
    )
    packed = root / "packed"
    pack_split(
        images_root=root,
        manifest_path=root / "manifest.tsv",
        split="train",
        classes=sorted(classes),
        size=size,
        images_out=packed / "images.npy",
        labels_out=packed / "labels.npy",
        classes_out=packed / "classes.json",
        threads=2,
    )
    return root / "train", packed


def legacy(folder: Path, size: int, augment: bool, save_to: Path | None) -> Callable:
    from tf_keras.preprocessing.image import ImageDataGenerator

    options = {"shear_range": 0.2, "zoom_range": 0.2, "horizontal_flip": True} if augment else {}
    generator = ImageDataGenerator(
        samplewise_center=True, samplewise_std_normalization=True, **options
    )

    def batches() -> Iterator:
        flow = generator.flow_from_directory(
            folder,
            target_size=(size, size),
            color_mode="grayscale",
            batch_size=BATCH,
            class_mode="categorical",
            save_to_dir=save_to,
            seed=0,
        )
        for _ in range(len(flow)):
            yield next(flow)[0]

    return batches


def dataset_from_directory(folder: Path, size: int) -> Callable:
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        folder,
        image_size=(size, size),
        color_mode="grayscale",
        batch_size=BATCH,
        seed=0,
        verbose=False,
    )
    return lambda: (images for images, _ in dataset)


def ours(packed: Path, preprocess) -> Callable:
    from simtrain.data.arrays import PackedSplit
    from simtrain.training.batches import PackedBatches

    batches = PackedBatches(PackedSplit.load(packed), BATCH, seed=0, workers=2)

    def run() -> Iterator:
        if preprocess is None:
            for i in range(len(batches)):
                yield batches[i][0]
        else:
            # predict() is the compiled path that training uses for its input pipeline.
            yield preprocess.predict(batches, verbose=0)

    return run


def augmentation_model(size: int, fused: bool):
    import keras

    from simtrain.training.layers import RandomAffine, Standardize

    class AlwaysTraining(keras.layers.Layer):
        """Runs the wrapped augmentation in training mode even inside predict()."""

        def __init__(self, layers, **kwargs):
            super().__init__(**kwargs)
            self.inner = layers

        def call(self, x):
            for layer in self.inner:
                x = layer(x, training=True)
            return x

    if fused:
        augment = [RandomAffine(shear=0.2, zoom=0.2, horizontal_flip=True, seed=0)]
    else:
        augment = [
            keras.layers.RandomShear(x_factor=0.2 / 45, y_factor=0.2 / 45, seed=0),
            keras.layers.RandomZoom(0.2, 0.2, seed=0),
            keras.layers.RandomFlip("horizontal", seed=0),
        ]
    inputs = keras.Input((size, size, 1), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = Standardize()(AlwaysTraining(augment)(x))
    # The network consumes the batch where it is: pool it to one number per image so the
    # timing does not include copying every augmented image back out of predict().
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def measure(run: Callable, images: int, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        served = sum(len(batch) for batch in run())
        best = min(best, time.perf_counter() - start)
        if served != images:
            raise RuntimeError(f"expected {images} images, got {served}")
    return images / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=positive_int, default=3000)
    parser.add_argument("--size", type=positive_int, default=256)
    parser.add_argument("--repeat", type=positive_int, default=2)
    parser.add_argument(
        "--skip-save-to-dir",
        action="store_true",
        help="skip the slowest method (the original with save_to_dir)",
    )
    add_results_argument(parser)
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="simtrain-input-"))
    try:
        folder, packed = make_data(root, args.images, args.size)
        n = len(np.load(packed / "labels.npy"))
        saved = root / "augmented"
        saved.mkdir()
        methods = {
            "original, augmented": legacy(folder, args.size, True, None),
            "original, augmented, save_to_dir": legacy(folder, args.size, True, saved),
            "original, no augmentation": legacy(folder, args.size, False, None),
            "image_dataset_from_directory": dataset_from_directory(folder, args.size),
            "ours, delivery (uint8 memmap)": ours(packed, None),
            "ours, augmented (fused warp)": ours(packed, augmentation_model(args.size, True)),
            "ours, augmented (3 Keras layers)": ours(packed, augmentation_model(args.size, False)),
        }
        if args.skip_save_to_dir:
            methods.pop("original, augmented, save_to_dir")
        rates = {}
        for name, run in methods.items():
            next(iter(run()))  # warm-up: file caches, compilation
            rates[name] = measure(run, n, args.repeat)
            print(f"  {name}: {rates[name]:.0f} img/s", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    augmented = rates["original, augmented"]
    plain = rates["original, no augmentation"]
    rows = [
        [name, f"{rate:.0f}", f"{rate / augmented:.2f}x", f"{rate / plain:.2f}x"]
        for name, rate in rates.items()
    ]
    print(
        f"\ninput pipeline, {n} images {args.size}x{args.size}, batch {BATCH}, best of "
        f"{args.repeat}"
    )
    print(format_table(["method", "images/s", "vs original aug", "vs original no aug"], rows))
    verdicts = {
        "augmented >= 5x original augmented": rates["ours, augmented (fused warp)"] / augmented
        >= 5,
        "delivery >= 10x original without augmentation": rates["ours, delivery (uint8 memmap)"]
        / plain
        >= 10,
    }
    for target, passed in verdicts.items():
        print(f"{target}: {'PASS' if passed else 'MISS'}")
    append_result(
        args.results,
        benchmark="input_pipeline",
        parameters={"images": n, "size": args.size, "batch": BATCH, "repeat": args.repeat},
        results={"images_per_second": rates},
        verdicts=verdicts,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
