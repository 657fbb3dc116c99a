"""Checks on a schema-validated config that JSON Schema cannot express.

Run by the Snakefile before any job starts, so a bad config fails in seconds with the
offending key named, and never after hours of simulation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from simtrain.simulate import simulate_image
from simtrain.simulators import SimulatorError, resolve_simulator
from simtrain.split import validation_count


class ConfigError(ValueError):
    """A config value is invalid; the message names its key."""


def split_sizes(config: Mapping[str, Any]) -> tuple[int, int]:
    """(training images, validation images) the split will produce."""
    per_class_validation = validation_count(
        config["images_per_class"], config["validation_fraction"]
    )
    n_classes = len(config["classes"])
    validation = per_class_validation * n_classes
    return config["images_per_class"] * n_classes - validation, validation


def check_classes(config: Mapping[str, Any], search_path: str | os.PathLike | None) -> None:
    """Every simulator resolves and its first image meets the output contract."""
    for name, spec in config["classes"].items():
        key = f"classes.{name}.simulator"
        try:
            function = resolve_simulator(spec["simulator"], search_path)
        except SimulatorError as error:
            raise ConfigError(f"{key}: {error}") from error
        try:
            simulate_image(
                function,
                class_name=name,
                simulator_name=spec["simulator"],
                params=spec.get("params", {}),
                seed=config["seed"],
                index=0,
                size=config["image_size"],
            )
        except ValueError as error:
            raise ConfigError(f"classes.{name}: {error}") from error
