"""Diagnosis accuracy on real training runs: one injected cause per scenario, known answers.

Tiny runs of the workflow's own code on the CPU: the data stage simulates four classes at
48×48 px, `simtrain.training.fit.train_run` trains the small CNN (15 epochs, batch 32, Adam
0.002 with a cosine decay after one warm-up epoch, the original augmentation with the nearest
warp), and `diagnose_run_dir` diagnoses it as
the workflow does. Each scenario injects a cause (or none) into an otherwise clean run. Before
its detection is scored, every injected cause is checked to really show its symptom, by a
brute-force measurement independent of the diagnosis (`symptom_*` below); runs without it are
reported and left out of the detection rates.

    uv run python benchmarks/diagnosis_accuracy.py real train --out runs/ --seeds 10
    uv run python benchmarks/diagnosis_accuracy.py real score --out runs/ --label after
    PYTHONPATH=<old checkout>/src uv run python benchmarks/diagnosis_accuracy.py real score \\
        --out runs/ --label before

Scores per scenario (each with its Wilson 95 % interval): the symptom present; the expected
code reported (detected); named as *the* cause (the curve's fluctuation cause when it moves
beyond noise, else the main finding); a wrong cause named (another inferred cause as the main
one); any other inferred code raised; for the glitch, the epoch named. Config-arithmetic
findings (partial epochs, partial validation, class counts) are in a table apart.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SIZE = 48
CLASSES = {
    "blobs": ("blobs", {"noise": 0.15, "contrast": 0.5}),
    "grating": ("grating", {"noise": 0.15, "contrast": 0.3}),
    "rings": ("rings", {"noise": 0.15, "contrast": 0.5}),
    "streaks": ("streaks", {"noise": 0.15, "contrast": 0.5}),
}
# small: 120 training and 40 validation images per class; large: 85 and 765 (3 060 validation).
DATASETS = {"small": (160, 0.25), "large": (850, 0.9)}
CLEAN = {
    "model": "small_cnn",
    "epochs": 15,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 0.002,
    "steps_per_epoch": None,
    "validation_steps": None,
    "validation_shuffle": False,
    "augmentation": {"shear": 0.2, "zoom": 0.2, "horizontal_flip": True},
    "standardize": True,
    "train_images": None,
    # A correctly configured run ends calm: the learning rate decays to 0 (cosine).
    "lr_schedule": {"kind": "cosine"},
    "warmup_epochs": 1,
}
# A small CNN without BatchNorm (a plug-in model from this folder).
PLAIN_CNN = "scenario_models:plain_cnn"
INFERRED = (
    "BATCHNORM_STATISTICS",
    "AUGMENTATION_SHIFT",
    "UNSTABLE_OPTIMIZATION",
    "OVERFITTING",
    "UNDER_TRAINED",
    "UNEXPLAINED_FLUCTUATION",
)
ARITHMETIC = ("PARTIAL_EPOCH", "PARTIAL_VALIDATION", "CLASS_IMBALANCE")


@dataclass(frozen=True)
class Scenario:
    name: str
    expected: tuple[str, ...]  # codes that must be reported; () for a clean run
    symptom: str  # the name of its brute-force check (see SYMPTOMS)
    settings: dict = field(default_factory=dict)
    data: str = "small"
    # Rewrites the packed training split (labels, class counts) in place.
    corrupt: Callable[[Path, np.random.Generator], None] | None = None
    injection: str | None = None  # "glitch" | "nan": a callback during training

    @property
    def kind(self) -> str:
        if not self.expected:
            return "clean"
        return "inferred" if any(c in INFERRED for c in self.expected) else "arithmetic"


def _write_train(train_dir: Path, images: np.ndarray, labels: np.ndarray) -> None:
    np.save(train_dir / "images.npy", images)
    np.save(train_dir / "labels.npy", labels.astype(np.int64))


def imbalanced(train_dir: Path, rng: np.random.Generator, ratio: int = 5) -> None:
    """Keep every image of the first class, 1/`ratio` of each other class's."""
    labels = np.load(train_dir / "labels.npy")
    keep = [np.flatnonzero(labels == 0)]
    for label in np.unique(labels)[1:]:
        members = np.flatnonzero(labels == label)
        keep.append(rng.choice(members, max(1, len(members) // ratio), replace=False))
    chosen = np.sort(np.concatenate(keep))
    _write_train(train_dir, np.load(train_dir / "images.npy")[chosen], labels[chosen])


BILINEAR = {**CLEAN["augmentation"], "interpolation": "bilinear"}
SCENARIOS = [
    Scenario("clean", (), "none"),
    Scenario("clean, 3 060 validation images", (), "none", data="large"),
    Scenario("partial epochs", ("PARTIAL_EPOCH",), "config", {"steps_per_epoch": 4}),
    Scenario(
        "shuffled partial validation",
        ("PARTIAL_VALIDATION",),
        "config",
        {"validation_steps": 1, "validation_shuffle": True},
    ),
    Scenario("5:1 class imbalance", ("CLASS_IMBALANCE",), "config", corrupt=imbalanced),
    Scenario(
        "BatchNorm momentum 0.999",
        ("BATCHNORM_STATISTICS",),
        "batchnorm",
        {"batchnorm_momentum": 0.999},
    ),
    Scenario("bilinear warp", ("AUGMENTATION_SHIFT",), "shift", {"augmentation": BILINEAR}),
    # Without BatchNorm, so the weights themselves jump (with it, a too-high rate mostly puts
    # the moving statistics off, which the evidence then rightly names).
    Scenario(
        "RMSprop 0.003 without BatchNorm",
        ("UNSTABLE_OPTIMIZATION",),
        "spikes",
        {
            "model": PLAIN_CNN,
            "optimizer": "rmsprop",
            "learning_rate": 0.003,
            "lr_schedule": None,
            "warmup_epochs": 0,
        },
    ),
    Scenario("NaN at epoch 4", ("UNSTABLE_OPTIMIZATION",), "nan", injection="nan"),
    Scenario(
        "16 training images, 40 epochs",
        ("OVERFITTING",),
        "memorised",
        {"train_images": 16, "epochs": 40},
    ),
    Scenario("2 epochs", ("UNDER_TRAINED",), "still_learning", {"epochs": 2, "warmup_epochs": 0}),
    Scenario("one-epoch glitch", ("UNEXPLAINED_FLUCTUATION",), "glitch", injection="glitch"),
    Scenario(
        "momentum 0.999 + shuffled partial validation",
        ("BATCHNORM_STATISTICS", "PARTIAL_VALIDATION"),
        "batchnorm",
        {"batchnorm_momentum": 0.999, "validation_steps": 1, "validation_shuffle": True},
    ),
]
SCENARIO_NAMES = [s.name for s in SCENARIOS]


def make_data(root: Path, name: str, seed: int = 0) -> Path:
    """root/<name>/packed/{train,validation} made by the real data stage."""
    from simtrain.data.pipeline import build_packed_dataset

    per_class, fraction = DATASETS[name]
    return build_packed_dataset(
        root / name,
        CLASSES,
        per_class=per_class,
        size=SIZE,
        seed=seed,
        validation_fraction=fraction,
    )


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def injection_callback(kind: str | None, seed: int):
    """The callback that injects a glitch or a NaN, and the epoch it hits (1-based)."""
    import keras

    rng = np.random.default_rng(seed)

    class ValidationGlitch(keras.callbacks.Callback):
        """After the last batch of one epoch, scramble the classifier's head; restore it when
        the next epoch begins: that epoch's validation (and kept weights) see a broken model,
        training does not."""

        def __init__(self, epoch: int):
            super().__init__()
            self.epoch, self.saved = epoch, None

        def _head(self):
            return self.model.layers[-1].layers[-1]

        def on_train_batch_end(self, batch, logs=None):
            if self.current == self.epoch - 1 and batch == self.params["steps"] - 1:
                kernel, bias = self._head().get_weights()
                self.saved = [kernel, bias]
                noise = rng.standard_normal(kernel.shape) * 5 * kernel.std()
                self._head().set_weights([kernel + noise.astype(kernel.dtype), bias])

        def on_epoch_begin(self, epoch, logs=None):
            self.current = epoch
            if self.saved is not None:
                self._head().set_weights(self.saved)
                self.saved = None

    class NaNWeights(keras.callbacks.Callback):
        """Make the head's bias NaN at the start of one epoch: training diverges from there."""

        def __init__(self, epoch: int):
            super().__init__()
            self.epoch = epoch

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == self.epoch - 1:
                head = self.model.layers[-1].layers[-1]
                kernel, bias = head.get_weights()
                head.set_weights([kernel, np.full_like(bias, np.nan)])

    if kind == "glitch":
        epoch = int(rng.integers(6, 14))
        return ValidationGlitch(epoch), epoch
    if kind == "nan":
        return NaNWeights(4), 4
    return None, None


def _stored_and_precise(run_dir: Path, data: Path, settings: dict) -> tuple[list, list]:
    """Per epoch, validation accuracy with the stored and with precise BN statistics over the
    whole training set (brute force: every training batch, no bootstrap)."""
    import keras

    from simtrain.data.arrays import PackedSplit
    from simtrain.training.batches import PackedBatches
    from simtrain.training.epoch_weights import epoch_weights_path
    from simtrain.training.models import custom_objects
    from simtrain.training.precise_bn import (
        assign_statistics,
        batchnorm_layers,
        collect_batch_statistics,
    )
    from simtrain.training.tables import per_image_scores

    model = keras.models.load_model(
        run_dir / "model.keras",
        custom_objects=custom_objects(settings["model"], Path(__file__).parent),
    )
    train, validation = PackedSplit.load(data / "train"), PackedSplit.load(data / "validation")
    batches = PackedBatches(train, settings["batch_size"], shuffle=True, seed=settings["seed"])
    scored = PackedBatches(validation, 64, shuffle=False)
    stored, precise = [], []
    epoch = 1
    while epoch_weights_path(run_dir, epoch).exists():
        model.load_weights(epoch_weights_path(run_dir, epoch))
        stored.append(
            float(per_image_scores(model.predict(scored, verbose=0), validation.labels)[1].mean())
        )
        statistics = collect_batch_statistics(model, batches, augment=False, batches=len(batches))
        assign_statistics(batchnorm_layers(model), statistics.averaged())
        precise.append(
            float(per_image_scores(model.predict(scored, verbose=0), validation.labels)[1].mean())
        )
        epoch += 1
    return stored, precise


def _shift_gap(run_dir: Path, data: Path, settings: dict) -> float:
    """Final weights: precise BN from un-augmented minus from augmented training batches."""
    import keras

    from simtrain.data.arrays import PackedSplit
    from simtrain.training.batches import PackedBatches
    from simtrain.training.precise_bn import (
        assign_statistics,
        batchnorm_layers,
        collect_batch_statistics,
    )
    from simtrain.training.tables import per_image_scores

    model = keras.models.load_model(run_dir / "model.keras")
    train, validation = PackedSplit.load(data / "train"), PackedSplit.load(data / "validation")
    batches = PackedBatches(train, settings["batch_size"], shuffle=True, seed=settings["seed"])
    scored = PackedBatches(validation, 64, shuffle=False)
    accuracy = {}
    for augment in (False, True):
        statistics = collect_batch_statistics(model, batches, augment=augment, batches=len(batches))
        assign_statistics(batchnorm_layers(model), statistics.averaged())
        accuracy[augment] = float(
            per_image_scores(model.predict(scored, verbose=0), validation.labels)[1].mean()
        )
    return accuracy[False] - accuracy[True]


def symptom(scenario: Scenario, run_dir: Path, data: Path, settings: dict, glitch_epoch) -> dict:
    """Does the run show its injected cause's symptom? Measured without the diagnosis."""
    history = pd.read_csv(run_dir / "history.tsv", sep="\t")
    kind = scenario.symptom
    if kind in ("none", "config"):
        return {"present": True, "measure": None, "what": "by construction"}
    if kind == "batchnorm":
        stored, precise = _stored_and_precise(run_dir, data, settings)
        gap = float(np.mean(np.subtract(precise, stored)[-4:]))
        movement = float(np.mean(np.abs(np.diff(stored))) - np.mean(np.abs(np.diff(precise))))
        return {
            "present": gap >= 0.05 or movement >= 0.03,
            "measure": [gap, movement],
            "what": "last 4 epochs: precise minus stored accuracy >= 5 points, or stored "
            "curve moves >= 3 points an epoch more",
        }
    if kind == "shift":
        gap = _shift_gap(run_dir, data, settings)
        return {
            "present": gap >= 0.05,
            "measure": gap,
            "what": "precise BN un-augmented minus augmented >= 5 points",
        }
    if kind == "spikes":
        # Without BatchNorm, a validation jump is the weights themselves jumping.
        warm = len(history) // 5
        jumps = np.abs(np.diff(history["val_accuracy"].to_numpy(float)[warm:]))
        return {
            "present": bool(jumps.max() >= 0.1),
            "measure": float(jumps.max()),
            "what": "a validation jump of >= 10 points after warm-up (no BatchNorm)",
        }
    if kind == "nan":
        loss = pd.to_numeric(history["loss"], errors="coerce").to_numpy(float)
        return {
            "present": bool((~np.isfinite(loss)).any()),
            "measure": None,
            "what": "a non-finite training loss",
        }
    if kind == "memorised":
        gap = float(history["accuracy"].iloc[-3:].mean() - history["val_accuracy"].iloc[-3:].mean())
        return {"present": gap >= 0.3, "measure": gap, "what": "train - val accuracy >= 30 points"}
    if kind == "still_learning":
        loss = history["loss"].to_numpy(float)
        fall = float((loss[-2] - loss[-1]) / loss[-2])
        return {"present": fall >= 0.1, "measure": fall, "what": "last epoch lowered loss >= 10 %"}
    if kind == "glitch":
        acc = history["val_accuracy"].to_numpy(float)
        t = glitch_epoch - 1
        dip = float(min(acc[t - 1], acc[t + 1]) - acc[t])
        return {
            "present": dip >= 0.1,
            "measure": dip,
            "what": "the glitch epoch >= 10 points below both neighbours",
        }
    raise ValueError(f"unknown symptom {kind!r}")


def train_scenario(
    scenario: Scenario,
    packed: Path,
    work: Path,
    seed: int,
    threads: int = 2,
    copy_data: bool = True,
) -> dict:
    """Train one seed of one scenario into `work`; its settings, symptom and timing. The data:
    a copy of `packed` (corrupted as the scenario says), or `packed` itself."""
    import keras

    from simtrain.training.fit import train_run

    data = work / "packed" if copy_data else packed
    if copy_data:
        shutil.copytree(packed, data)
    if scenario.corrupt is not None:
        scenario.corrupt(data / "train", np.random.default_rng(seed))
    settings = {**CLEAN, **scenario.settings, "seed": seed}
    callback, glitch_epoch = injection_callback(scenario.injection, seed)
    run_dir = work / "run"
    started = time.perf_counter()
    keras.backend.clear_session()
    train_run(
        run="scenario",
        settings=settings,
        train_dir=data / "train",
        validation_dir=data / "validation",
        out_dir=run_dir,
        resolved_config={},
        threads=threads,
        search_path=Path(__file__).parent,
        callbacks=[callback] if callback else (),
    )
    seconds = time.perf_counter() - started
    result = symptom(scenario, run_dir, data, settings, glitch_epoch)
    info = {
        "scenario": scenario.name,
        "seed": seed,
        "settings": settings,
        "glitch_epoch": glitch_epoch,
        "symptom": result,
        "train_seconds": round(seconds, 1),
    }
    (work / "scenario.json").write_text(json.dumps(info, indent=1))
    return info


def _start_worker(threads: int) -> None:
    """A worker process: frameworks held to `threads` (set before TensorFlow loads)."""
    from simtrain.common.frameworks import prepare_job

    prepare_job(threads)


def _train_task(name: str, packed: Path, work: Path, seed: int, threads: int) -> dict:
    scenario = next(s for s in SCENARIOS if s.name == name)
    shutil.rmtree(work, ignore_errors=True)
    return train_scenario(scenario, packed, work, seed, threads)


def workers(jobs: int) -> concurrent.futures.ProcessPoolExecutor:
    """`jobs` fresh processes sharing the cores (fresh: TensorFlow does not survive a fork)."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return concurrent.futures.ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(threads,),
    )


def train_all(out: Path, seeds: list[int], names: list[str] | None, jobs: int = 1) -> None:
    """Train every chosen scenario and seed into out/<scenario>/seed-<k>/ (skipping finished
    ones, so an interrupted benchmark resumes), `jobs` runs side by side."""
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    data = {name: make_data(out / "data", name) for name in {s.data for s in chosen}}
    threads = max(1, (os.cpu_count() or 1) // jobs)
    tasks = [
        (s.name, data[s.data], out / slug(s.name) / f"seed-{seed}", seed, threads)
        for s in chosen
        for seed in seeds
        if not (out / slug(s.name) / f"seed-{seed}" / "scenario.json").exists()
    ]
    with workers(jobs) as pool:
        for info in pool.map(_train_task, *zip(*tasks)) if tasks else ():
            summary = {k: info[k] for k in ("scenario", "seed", "train_seconds")}
            print(json.dumps(summary | {"symptom": info["symptom"]["present"]}), flush=True)


def _seeds(text: str) -> list[int]:
    """'10' -> seeds 0..9; '100-104' -> 100..104."""
    if "-" in text:
        first, last = map(int, text.split("-"))
        return list(range(first, last + 1))
    return list(range(int(text)))


def run_train(arguments: argparse.Namespace) -> None:
    started = time.perf_counter()
    train_all(arguments.out, _seeds(arguments.seeds), arguments.scenarios, arguments.jobs)
    print(f"trained in {time.perf_counter() - started:.0f} s")


def run_score(arguments: argparse.Namespace) -> None:
    from common import append_result
    from diagnosis_accuracy import markdown, rate, rate_text
    from diagnosis_real_scoring import clean_total, diagnose_all, score

    started = time.perf_counter()
    runs = diagnose_all(arguments.out, arguments.label, arguments.jobs)
    tables, summary = score(runs, rate, rate_text)
    seconds = time.perf_counter() - started
    titles = {
        "clean": "Clean runs: any WARNING is a false alarm",
        "inferred": "Inferred causes (runs with the symptom)",
        "arithmetic": "Config arithmetic (true by construction)",
    }
    for name, table in tables.items():
        print(f"### Real runs, {arguments.label}: {titles[name]}\n")
        print(markdown(table) + "\n")
    total = clean_total(runs, rate)
    print(f"All clean runs: WARNING {rate_text(total)}; diagnosed in {seconds:.0f} s")
    if arguments.results is not None:
        append_result(
            arguments.results,
            benchmark="diagnosis_accuracy real",
            parameters={"out": str(arguments.out), "label": arguments.label, "runs": len(runs)},
            results=summary | {"all clean": {"WARNING": total}},
            verdicts=_verdicts(summary, total),
        )


def _verdicts(summary: dict, clean: dict) -> dict:
    """The pre-registered targets, each PASS or MISS."""
    verdicts = {
        "clean WARNING <= 5 %, upper bound <= 12 %": "PASS"
        if clean["rate"] is not None and clean["rate"] <= 0.05 and clean["high"] <= 0.12
        else "MISS"
    }
    for scenario in SCENARIOS:
        measures = summary.get(scenario.name, {})
        if scenario.kind != "inferred" or not measures.get("detected", {}).get("runs"):
            continue
        ok = (
            measures["detected"]["rate"] >= 0.8
            and measures["named as the cause"]["rate"] >= 0.7
            and measures["wrong cause named"]["rate"] <= 0.1
        )
        verdicts[f"{scenario.name}: detected >= 80 %, named >= 70 %, wrong <= 10 %"] = (
            "PASS" if ok else "MISS"
        )
    return verdicts


def add_real_commands(commands) -> None:
    """`real train` and `real score` under the benchmark's command line."""
    from common import add_results_argument

    real = commands.add_parser("real", help="tiny real training runs, one injected cause each")
    steps = real.add_subparsers(dest="step", required=True)
    train = steps.add_parser("train", help="train every scenario's seeds (resumable)")
    train.add_argument("--out", type=Path, required=True, help="folder for the trained runs")
    train.add_argument("--seeds", default="10", help="N (seeds 0..N-1) or FIRST-LAST")
    train.add_argument("--scenarios", nargs="+", choices=SCENARIO_NAMES, metavar="NAME")
    train.add_argument("--jobs", type=int, default=2, help="runs trained side by side")
    train.set_defaults(handler=run_train)
    scoring = steps.add_parser("score", help="diagnose the trained runs and tabulate")
    scoring.add_argument("--out", type=Path, required=True, help="folder of the trained runs")
    scoring.add_argument("--label", default="current", help="names this library's diagnoses")
    scoring.add_argument("--jobs", type=int, default=2, help="runs diagnosed side by side")
    add_results_argument(scoring)
    scoring.set_defaults(handler=run_score)
