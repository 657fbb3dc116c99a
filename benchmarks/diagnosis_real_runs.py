"""Diagnosis accuracy on real training runs: one injected cause per scenario, known answers.

Tiny runs of the workflow's own code on the CPU: the data stage simulates four classes at
48×48 px, `simtrain.training.fit.train_run` trains the small CNN, and
`simtrain.diagnosis.run_dir.diagnose_run_dir` diagnoses it exactly as the workflow does. Each
scenario injects one cause into an otherwise clean run and names the finding that must
report it; every scenario runs with several seeds. The table gives, per scenario, how often
each WARNING/CRITICAL code fired: the injected cause's column is the detection rate, the
others (and the whole clean row) are false alarms.

    uv run python benchmarks/diagnosis_accuracy.py real --seeds 3
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SIZE = 48
PER_CLASS = 120
CLASSES = {
    "blobs": ("blobs", {"noise": 0.2, "contrast": 0.35}),
    "grating": ("grating", {"noise": 0.2, "contrast": 0.2}),
    "rings": ("rings", {"noise": 0.2, "contrast": 0.35}),
    "streaks": ("streaks", {"noise": 0.2, "contrast": 0.35}),
}
CLEAN = {
    "model": "small_cnn",
    "epochs": 12,
    "batch_size": 16,
    "optimizer": "adam",
    "learning_rate": 0.002,
    "steps_per_epoch": None,
    "validation_steps": None,
    "validation_shuffle": False,
    "augmentation": {"shear": 0.2, "zoom": 0.2, "horizontal_flip": True},
    "standardize": True,
    "train_images": None,
}


@dataclass(frozen=True)
class Scenario:
    name: str
    expected: str | None  # the finding code that must report the injected cause
    settings: dict = field(default_factory=dict)
    # Rewrites the packed training split (labels, class counts) in place.
    corrupt: Callable[[Path, np.random.Generator], None] | None = None


def _write_train(train_dir: Path, images: np.ndarray, labels: np.ndarray) -> None:
    np.save(train_dir / "images.npy", images)
    np.save(train_dir / "labels.npy", labels.astype(np.int64))


def noisy_labels(train_dir: Path, rng: np.random.Generator, fraction: float = 0.3) -> None:
    """`fraction` of the training labels moved to another class, chosen at random."""
    labels = np.load(train_dir / "labels.npy")
    classes = len(json.loads((train_dir / "classes.json").read_text()))
    flip = rng.choice(len(labels), round(fraction * len(labels)), replace=False)
    labels[flip] = (labels[flip] + rng.integers(1, classes, len(flip))) % classes
    _write_train(train_dir, np.load(train_dir / "images.npy"), labels)


def imbalanced(train_dir: Path, rng: np.random.Generator, ratio: int = 5) -> None:
    """Keep every image of the first class, 1/`ratio` of each other class's."""
    labels = np.load(train_dir / "labels.npy")
    keep = [np.flatnonzero(labels == 0)]
    for label in np.unique(labels)[1:]:
        members = np.flatnonzero(labels == label)
        keep.append(rng.choice(members, max(1, len(members) // ratio), replace=False))
    chosen = np.sort(np.concatenate(keep))
    _write_train(train_dir, np.load(train_dir / "images.npy")[chosen], labels[chosen])


SCENARIOS = [
    Scenario("clean", None),
    Scenario("partial epochs", "PARTIAL_EPOCH", {"steps_per_epoch": 4}),
    Scenario(
        "shuffled partial validation",
        "PARTIAL_VALIDATION",
        {"validation_steps": 1, "validation_shuffle": True},
    ),
    Scenario("learning rate 20x", "UNSTABLE_OPTIMIZATION", {"learning_rate": 0.04}),
    Scenario("batch size 2 + BatchNorm", "BATCHNORM_STATISTICS", {"batch_size": 2, "epochs": 6}),
    Scenario(
        "augmentation shift",
        "AUGMENTATION_SHIFT",
        {"augmentation": {**CLEAN["augmentation"], "interpolation": "bilinear"}},
    ),
    Scenario("30 % label noise", "OVERFITTING", {"epochs": 30}, corrupt=noisy_labels),
    Scenario("5:1 class imbalance", "CLASS_IMBALANCE", corrupt=imbalanced),
    Scenario("tiny training set, many epochs", "OVERFITTING", {"train_images": 16, "epochs": 40}),
]


def make_data(root: Path, seed: int = 0) -> Path:
    """root/packed/{train,validation} made by the real data stage."""
    from simtrain.data.pipeline import build_packed_dataset

    return build_packed_dataset(root, CLASSES, per_class=PER_CLASS, size=SIZE, seed=seed)


def run_scenario(scenario: Scenario, packed: Path, work: Path, seed: int) -> dict:
    """Train and diagnose one seed of one scenario; the codes of its WARNING/CRITICAL findings."""
    import keras

    from simtrain.diagnosis.run_dir import diagnose_run_dir
    from simtrain.training.fit import train_run

    data = work / "packed"
    shutil.copytree(packed, data)
    if scenario.corrupt is not None:
        scenario.corrupt(data / "train", np.random.default_rng(seed))
    settings = {**CLEAN, **scenario.settings, "seed": seed}
    out = work / "run"
    started = time.perf_counter()
    keras.backend.clear_session()
    train_run(
        run="scenario",
        settings=settings,
        train_dir=data / "train",
        validation_dir=data / "validation",
        out_dir=out,
        resolved_config={},
        threads=2,
    )
    result = diagnose_run_dir(
        out,
        run="scenario",
        settings=settings,
        train_dir=data / "train",
        validation_dir=data / "validation",
        json_path=out / "diagnostics.json",
        markdown_path=out / "diagnostics.md",
    )
    flagged = sorted({f.code for f in result.findings if f.severity != "info"})
    return {
        "scenario": scenario.name,
        "expected": scenario.expected,
        "seed": seed,
        "flagged": flagged,
        "seconds": round(time.perf_counter() - started, 1),
    }


def real_runs(seeds: int, scenarios: list[str] | None = None) -> pd.DataFrame:
    """One row per (scenario, seed): the codes flagged."""
    chosen = [s for s in SCENARIOS if scenarios is None or s.name in scenarios]
    rows = []
    with tempfile.TemporaryDirectory() as root:
        packed = make_data(Path(root) / "data")
        for scenario in chosen:
            for seed in range(seeds):
                work = Path(root) / f"{scenario.name}-{seed}".replace(" ", "_")
                rows.append(run_scenario(scenario, packed, work, seed))
                print(rows[-1], flush=True)
                shutil.rmtree(work)
    return pd.DataFrame(rows)


def cause_by_finding(runs: pd.DataFrame) -> pd.DataFrame:
    """Scenario x finding code: share of the scenario's runs in which the code fired."""
    codes = sorted({code for flagged in runs["flagged"] for code in flagged})
    table = []
    for (name, expected), group in runs.groupby(["scenario", "expected"], dropna=False, sort=False):
        row = {"scenario": name, "injected": expected or "none", "runs": len(group)}
        for code in codes:
            row[code] = float(np.mean([code in flagged for flagged in group["flagged"]]))
        if isinstance(expected, str):
            row["found"] = row.get(expected, 0.0)
        else:
            row["found"] = float(np.mean([not flagged for flagged in group["flagged"]]))
        table.append(row)
    return pd.DataFrame(table)
