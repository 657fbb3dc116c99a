"""Training throughput: the real train step fed from packed arrays on disk, against the same
model fed from in-memory tensors.

Command (any Keras backend; on the GPU machine with KERAS_BACKEND=jax, see benchmarks/README.md):

    uv run python benchmarks/train_throughput.py [--model resnet50] [--size 256]
        [--batch 128] [--steps 60] [--precision mixed_bfloat16 float32]

It writes its own packed uint8 arrays (images.npy/labels.npy/classes.json, as the pack rule
does) into a temporary folder, builds the workflow's model (uint8 input, fused shear/zoom/flip
augmentation, per-image standardisation, the classifier) and times `model.fit` over --steps
batches after one warm-up fit (compilation):

- "packed": `simtrain.training.batches.PackedBatches` reading the .npy by memory map with --workers
  loader threads — exactly what the train rule runs;
- "in memory": the same number of uint8 images as one numpy array already in RAM.

It also times `predict` (validation) on the packed data. The ratio packed / in-memory is the
loader's cost; the target is >= 95 %. One JSON line is appended to --results.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_results_argument, append_result, format_table, positive_int

CLASSES = 5


def write_packed(folder: Path, images: int, size: int) -> None:
    """Random uint8 images in the pack rule's format (throughput does not depend on content)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    array = np.lib.format.open_memmap(
        folder / "images.npy", mode="w+", dtype=np.uint8, shape=(images, size, size, 1)
    )
    for start in range(0, images, 256):
        stop = min(start + 256, images)
        array[start:stop] = rng.integers(0, 256, (stop - start, size, size, 1), dtype=np.uint8)
    array.flush()
    np.save(folder / "labels.npy", np.arange(images) % CLASSES)
    (folder / "classes.json").write_text(json.dumps([f"c{i}" for i in range(CLASSES)]))


def timed_fit(model, data, steps: int, batch: int, **fit_args) -> float:
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, shuffle=False, **fit_args)
    return steps * batch / (time.perf_counter() - start)


def measure(args, precision: str, folder: Path) -> dict[str, float]:
    import keras

    from simtrain.data.arrays import PackedSplit
    from simtrain.training.batches import PackedBatches
    from simtrain.training.models import build_model

    keras.mixed_precision.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    model = build_model(
        args.model,
        image_size=args.size,
        num_classes=CLASSES,
        augmentation={"shear": 0.2, "zoom": 0.2, "horizontal_flip": True},
        standardize=True,
        seed=0,
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    split = PackedSplit.load(folder)
    packed = PackedBatches(split, args.batch, steps=args.steps, seed=0, workers=args.workers)
    n = args.steps * args.batch
    memory_x = np.asarray(split.images[:n])
    memory_y = np.eye(CLASSES, dtype="float32")[split.labels[:n]]
    warm = PackedBatches(split, args.batch, steps=2, seed=1, workers=args.workers)
    model.fit(warm, epochs=1, verbose=0, shuffle=False)  # compile the train step
    model.fit(
        memory_x[: 2 * args.batch],
        memory_y[: 2 * args.batch],
        batch_size=args.batch,
        epochs=1,
        verbose=0,
        shuffle=False,
    )
    results = {}
    for _ in range(args.repeat):  # interleaved, best of --repeat
        results["in_memory"] = max(
            results.get("in_memory", 0),
            timed_fit(model, memory_x, args.steps, args.batch, y=memory_y, batch_size=args.batch),
        )
        results["packed"] = max(
            results.get("packed", 0), timed_fit(model, packed, args.steps, args.batch)
        )
    validation = PackedBatches(
        split, args.batch, steps=args.steps, shuffle=False, workers=args.workers
    )
    model.predict(PackedBatches(split, args.batch, steps=2, shuffle=False), verbose=0)
    start = time.perf_counter()
    model.predict(validation, verbose=0)
    results["predict"] = n / (time.perf_counter() - start)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=positive_int, default=256)
    parser.add_argument("--batch", type=positive_int, default=128)
    parser.add_argument("--steps", type=positive_int, default=60)
    parser.add_argument("--workers", type=positive_int, default=8)
    parser.add_argument("--repeat", type=positive_int, default=2)
    parser.add_argument("--precision", nargs="+", default=["mixed_bfloat16", "float32"])
    add_results_argument(parser)
    args = parser.parse_args(argv)

    import keras

    from simtrain.training.backend import accelerators

    folder = Path(tempfile.mkdtemp(prefix="simtrain-throughput-"))
    try:
        write_packed(folder, args.steps * args.batch, args.size)
        measured = {p: measure(args, p, folder) for p in args.precision}
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    devices = ", ".join(accelerators()) or "cpu"
    print(
        f"\n{args.model} {args.size}x{args.size}, batch {args.batch}, {args.steps} steps, "
        f"backend {keras.backend.backend()}, devices {devices}"
    )
    rows = [
        [
            p,
            f"{r['in_memory']:.0f}",
            f"{r['packed']:.0f}",
            f"{100 * r['packed'] / r['in_memory']:.1f} %",
            f"{r['predict']:.0f}",
        ]
        for p, r in measured.items()
    ]
    print(
        format_table(
            ["precision", "in-memory img/s", "packed img/s", "packed/in-memory", "predict img/s"],
            rows,
        )
    )
    verdicts = {p: r["packed"] / r["in_memory"] >= 0.95 for p, r in measured.items()}
    for precision, passed in verdicts.items():
        print(f"{precision}: packed >= 95 % of in-memory: {'PASS' if passed else 'MISS'}")
    append_result(
        args.results,
        benchmark="train_throughput",
        parameters={
            **vars(args),
            "results": None,
            "devices": devices,
            "backend": keras.backend.backend(),
        },
        results=measured,
        verdicts=verdicts,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
