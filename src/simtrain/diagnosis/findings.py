"""What a diagnosis is made of: `Finding`, `Skipped`, the run's `RunSettings`, and helpers.

A check (one module per cause: coverage, batchnorm, optimization, overfitting, imbalance,
noise) returns a `Finding`, a `Skipped` (an input it needs is missing) or None (nothing to
report). Every threshold is a module constant with the reason for its value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


def plain_number(value: object) -> float | int | bool | None:
    """A JSON-safe Python number: ints stay ints, floats keep 4 significant digits, NaN -> None."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        return None
    return float(f"{number:.4g}")


@dataclass(frozen=True)
class Finding:
    """One explanation of the learning curve: what was seen, why it matters, what to change."""

    code: str
    severity: str  # "info" | "warning" | "critical"
    title: str
    evidence: dict[str, float | int | bool | None]
    explanation: str
    fix: str
    # The fix as a config change under runs.<run> (e.g. {"steps_per_epoch": None}), when it
    # is one: what a verify_fixes sibling run trains with. None: not a config change.
    change: dict[str, object] | None = None

    def __post_init__(self) -> None:
        if self.severity not in ("info", "warning", "critical"):
            raise ValueError(f"Finding {self.code}: unknown severity {self.severity!r}")
        clean = {str(key): plain_number(value) for key, value in self.evidence.items()}
        object.__setattr__(self, "evidence", dict(sorted(clean.items())))


@dataclass(frozen=True)
class Skipped:
    """A check that could not run, and why."""

    code: str
    reason: str


@dataclass(frozen=True)
class RunSettings:
    """How the run was trained (the `runs.<run>` config keys the findings refer to)."""

    run: str
    train_images: int
    validation_images: int
    batch_size: int
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    validation_shuffle: bool = False
    learning_rate: float | None = None
    optimizer: str | None = None
    # None: not known (the command line), so a fix may not assume either value.
    augmentation: bool | None = None
    epochs: int | None = None
    # The learning-rate schedule's kind ("none": constant) and whether training used a subset
    # of the training images (train_images); None: not known.
    lr_schedule: str | None = None
    train_subset: bool | None = None

    def key(self, name: str) -> str:
        return f"runs.{self.run}.{name}"

    @classmethod
    def checked(cls, **settings: object) -> RunSettings:
        """Settings whose counts were checked (a ValueError names the key that is wrong)."""
        counts = ("train_images", "validation_images", "batch_size", "steps_per_epoch")
        for name in (*counts, "validation_steps"):
            least = 0 if name == "validation_images" else 1
            value = settings[name]
            if value is None and "steps" in name:
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
            settings[name] = int(value)
        settings["validation_shuffle"] = bool(settings["validation_shuffle"])
        epochs = settings.get("epochs")
        if epochs is not None and (
            isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 1
        ):
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        if settings.get("augmentation") is not None:
            settings["augmentation"] = bool(settings["augmentation"])
        return cls(**settings)  # type: ignore[arg-type]


def finite_column(frame: pd.DataFrame | None, column: str) -> np.ndarray:
    """The finite values of a numeric column, or an empty array when it is missing."""
    if frame is None or column not in frame.columns:
        return np.array([], dtype=float)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]
