"""Architectures: size and CPU speed of the keras.applications models a run's `model:` takes.

For one member of every family (`--all`: every member; `--models`: the ones named) it builds
the workflow's model (`build_model`: uint8 input, per-image standardisation, the architecture
with weights=None on greyscale input, softmax head; augmentation off), compiled as the train
rule compiles it (Adam, categorical cross-entropy, accuracy), and reports

- parameters,
- training images/s: `fit` on random uint8 images of --batch, after --warmup steps (tracing),
  over as many steps as fit in --seconds (at least 2, at most --steps), so big models take
  fewer timed steps,
- inference images/s: `predict` the same way.

Images are --size px, or the architecture's minimum if larger (Xception 71, InceptionV3 and
InceptionResNetV2 75); the table's size column says which. A markdown table is printed and one
JSON line appended to --results.

    uv run python benchmarks/architectures.py [--all | --models NAME ...] [--size 64]
        [--batch 16] [--steps 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_results_argument, append_result, positive_int  # noqa: E402

from simtrain.training.applications import ARCHITECTURES, FAMILIES  # noqa: E402

CLASSES = 5


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = [headers, ["---"] * len(headers), *rows]
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines)


def images_per_second(run_steps, batch: int, seconds: float, max_steps: int) -> tuple[float, int]:
    """Images/s of `run_steps(n)` (n batches), timed over about `seconds`: one step is timed
    first to choose n (>= 2, <= max_steps)."""
    start = time.perf_counter()
    run_steps(1)
    one_step = time.perf_counter() - start
    steps = max(2, min(max_steps, int(seconds / max(one_step, 1e-6))))
    start = time.perf_counter()
    run_steps(steps)
    return steps * batch / (time.perf_counter() - start), steps


def measure(name: str, args: argparse.Namespace) -> dict[str, float | int | str]:
    import keras

    from simtrain.training.models import build_model

    keras.utils.set_random_seed(0)
    size = max(args.size, ARCHITECTURES[name].min_size) if name in ARCHITECTURES else args.size
    model = build_model(
        name,
        image_size=size,
        num_classes=CLASSES,
        augmentation={},  # off: RandomAffine's defaults are the identity
        standardize=True,
        seed=0,
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    count = args.batch * args.steps
    x = rng.integers(0, 256, (count, size, size, 1), dtype=np.uint8)
    y = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, count)]

    def train(steps: int) -> None:
        n = steps * args.batch
        model.fit(x[:n], y[:n], batch_size=args.batch, epochs=1, verbose=0, shuffle=False)

    def predict(steps: int) -> None:
        model.predict(x[: steps * args.batch], batch_size=args.batch, verbose=0)

    train(args.warmup)  # traces the train step
    train_rate, train_steps = images_per_second(train, args.batch, args.seconds, args.steps)
    predict(args.warmup)
    predict_rate, predict_steps = images_per_second(predict, args.batch, args.seconds, args.steps)
    result = {
        "model": name,
        "family": ARCHITECTURES[name].name if name in ARCHITECTURES else "built-in",
        "size": size,
        "parameters": model.count_params(),
        "train_images_per_second": train_rate,
        "train_steps": train_steps,
        "predict_images_per_second": predict_rate,
        "predict_steps": predict_steps,
    }
    keras.backend.clear_session()
    gc.collect()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--all", action="store_true", help="every supported architecture")
    choice.add_argument("--models", nargs="+", help="these models (any `model:` name)")
    parser.add_argument("--size", type=positive_int, default=64)
    parser.add_argument("--batch", type=positive_int, default=16)
    parser.add_argument("--warmup", type=positive_int, default=2)
    parser.add_argument("--steps", type=positive_int, default=20, help="most timed steps")
    parser.add_argument("--seconds", type=float, default=10.0, help="target time per timing")
    add_results_argument(parser)
    args = parser.parse_args(argv)
    if args.all:
        names = list(ARCHITECTURES)
    else:
        names = args.models or [family.members[0] for family in FAMILIES]

    import keras

    measured = []
    for name in names:
        measured.append(measure(name, args))
        done = measured[-1]
        print(
            f"{name}: {done['train_images_per_second']:.1f} train img/s, "
            f"{done['predict_images_per_second']:.1f} predict img/s",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"\nbatch {args.batch}, backend {keras.backend.backend()}, CPU, float32, "
        f"augmentation off, at most {args.steps} timed steps (~{args.seconds:g} s each)\n"
    )
    rows = [
        [
            r["family"],
            f"`{r['model']}`",
            f"{r['size']}" + ("" if r["size"] == args.size else " (its minimum)"),
            f"{r['parameters'] / 1e6:.1f} M",
            f"{r['train_images_per_second']:.1f}",
            f"{r['predict_images_per_second']:.0f}",
            f"{r['train_steps']} / {r['predict_steps']}",
        ]
        for r in measured
    ]
    headers = ["family", "model", "px", "parameters", "train img/s", "predict img/s"]
    print(markdown_table([*headers, "timed steps (train / predict)"], rows))
    append_result(
        args.results,
        benchmark="architectures",
        parameters={**vars(args), "results": None, "models": names},
        results=measured,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
