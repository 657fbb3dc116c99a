"""A deep run's training options (`runs.<run>.lr_schedule`, `early_stopping`, ...), checked
and completed with their defaults, without Keras.

The plan checks them (`simtrain.config.check_runs`) so a bad combination fails before any
job; training parses them again, since a fix-verification sibling's settings are the
parent's with a config change applied after planning (`simtrain.common.runs.apply_change`).
The defaults here are the schema's (a test checks they agree): a sibling's change may name
a mapping only in part, e.g. `{"early_stopping": {"patience": 3}}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# What Keras logs per epoch (val_* written by simtrain's Recorder), and which way is better.
MONITORS = {"val_loss": "min", "val_accuracy": "max", "loss": "min", "accuracy": "max"}
CHECKPOINT_MONITORS = ("val_loss", "val_accuracy")

REQUIRED = object()  # a schedule parameter without a default
SCHEDULE_PARAMETERS: dict[str, dict[str, Any]] = {
    "cosine": {"alpha": 0.0},
    "step": {"drop": REQUIRED, "every_epochs": REQUIRED},
    "reduce_on_plateau": {
        "monitor": "val_loss",
        "factor": 0.1,
        "patience": 10,
        "min_delta": 0.0001,
        "cooldown": 0,
        "min_learning_rate": 0.0,
    },
}
EARLY_STOPPING_DEFAULTS: dict[str, Any] = {
    "monitor": "val_loss",
    "patience": 5,
    "min_delta": 0.0,
    "restore_best_weights": False,
}
DEFAULTS: dict[str, Any] = {
    "lr_schedule": None,
    "warmup_epochs": 0,
    "early_stopping": None,
    "checkpoint_monitor": "val_loss",
    "label_smoothing": 0.0,
    "weight_decay": None,
    "batchnorm_momentum": None,
    "model_params": {},
}


class OptionError(ValueError):
    """A training option is invalid; `key` is its path under `runs.<run>`."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.reason = message


@dataclass(frozen=True)
class TrainingOptions:
    """A run's training options, complete: every default filled in."""

    lr_schedule: dict[str, Any] | None = None
    warmup_epochs: int = 0
    early_stopping: dict[str, Any] | None = None
    checkpoint_monitor: str = "val_loss"
    label_smoothing: float = 0.0
    weight_decay: float | None = None
    batchnorm_momentum: float | None = None
    model_params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(key: str, value: Any, low: float, high: float, *, closed_high: bool = False) -> float:
    """value in [low, high) (or [low, high]), else an OptionError naming key."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionError(key, f"expected a number, got {value!r}")
    if not (low <= value <= high if closed_high else low <= value < high):
        bracket = "]" if closed_high else ")"
        raise OptionError(key, f"{value!r} is outside [{low}, {high}{bracket}")
    return float(value)


def _integer(key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise OptionError(key, f"expected an integer >= {low}, got {value!r}")
    return value


def _monitor(key: str, value: Any, allowed: Sequence[str] = tuple(MONITORS)) -> str:
    if value not in allowed:
        raise OptionError(key, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise OptionError(key, f"expected a mapping or null, got {value!r}")
    return value


def parse_schedule(
    value: Any, *, learning_rate: float, epochs: int, warmup_epochs: int
) -> dict[str, Any] | None:
    """`lr_schedule` with its kind's defaults filled in; None for a constant rate."""
    if value is None:
        return None
    value = _mapping("lr_schedule", value)
    kind = value.get("kind")
    if kind not in SCHEDULE_PARAMETERS:
        raise OptionError(
            "lr_schedule.kind", f"{kind!r} is not one of {', '.join(SCHEDULE_PARAMETERS)}"
        )
    parameters = SCHEDULE_PARAMETERS[kind]
    for name in value:
        if name != "kind" and name not in parameters:
            raise OptionError(
                f"lr_schedule.{name}",
                f"not a parameter of kind {kind!r} (its parameters: {', '.join(parameters)})",
            )
    schedule = {"kind": kind}
    for name, default in parameters.items():
        if name not in value and default is REQUIRED:
            raise OptionError(f"lr_schedule.{name}", f"required by kind {kind!r}")
        schedule[name] = value.get(name, default)
    key = "lr_schedule."
    if kind == "cosine":
        schedule["alpha"] = _number(key + "alpha", schedule["alpha"], 0, 1, closed_high=True)
    elif kind == "step":
        schedule["drop"] = _number(key + "drop", schedule["drop"], 0, 1)
        if schedule["drop"] == 0:
            raise OptionError(key + "drop", "0 would stop learning; expected a number in (0, 1)")
        every = _integer(key + "every_epochs", schedule["every_epochs"], 1)
        if every >= epochs - warmup_epochs:
            raise OptionError(
                key + "every_epochs",
                f"{every} >= the {epochs - warmup_epochs} epochs after warm-up: the rate "
                "would never drop",
            )
    else:
        _monitor(key + "monitor", schedule["monitor"])
        factor = _number(key + "factor", schedule["factor"], 0, 1)
        if factor == 0:
            raise OptionError(key + "factor", "expected a number in (0, 1)")
        _integer(key + "patience", schedule["patience"], 0)
        _integer(key + "cooldown", schedule["cooldown"], 0)
        _number(key + "min_delta", schedule["min_delta"], 0, float("inf"))
        floor = _number(key + "min_learning_rate", schedule["min_learning_rate"], 0, learning_rate)
        schedule["min_learning_rate"], schedule["factor"] = floor, factor
        schedule["min_delta"] = float(schedule["min_delta"])
        if warmup_epochs:
            raise OptionError(
                "warmup_epochs",
                "not with lr_schedule kind 'reduce_on_plateau': Keras' ReduceLROnPlateau "
                "needs a plain learning rate, not a warm-up schedule; use cosine or step, or "
                "warmup_epochs: 0",
            )
    return schedule


def parse_early_stopping(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    value = _mapping("early_stopping", value)
    for name in value:
        if name not in EARLY_STOPPING_DEFAULTS:
            raise OptionError(
                f"early_stopping.{name}",
                f"unknown key (known: {', '.join(EARLY_STOPPING_DEFAULTS)})",
            )
    stopping = {**EARLY_STOPPING_DEFAULTS, **value}
    _monitor("early_stopping.monitor", stopping["monitor"])
    _integer("early_stopping.patience", stopping["patience"], 0)
    stopping["min_delta"] = _number(
        "early_stopping.min_delta", stopping["min_delta"], 0, float("inf")
    )
    if not isinstance(stopping["restore_best_weights"], bool):
        raise OptionError(
            "early_stopping.restore_best_weights",
            f"expected true or false, got {stopping['restore_best_weights']!r}",
        )
    return stopping


def training_options(settings: Mapping[str, Any]) -> TrainingOptions:
    """The options of a run's settings (absent keys take their defaults), checked against each
    other and the run's `epochs` and `learning_rate`; OptionError names the first bad key."""
    values = {name: settings.get(name, default) for name, default in DEFAULTS.items()}
    epochs, learning_rate = settings["epochs"], settings["learning_rate"]
    warmup = _integer("warmup_epochs", values["warmup_epochs"], 0)
    if warmup >= epochs:
        raise OptionError(
            "warmup_epochs", f"{warmup} >= epochs ({epochs}): no epoch would train at full rate"
        )
    weight_decay, momentum = values["weight_decay"], values["batchnorm_momentum"]
    params = values["model_params"]
    if not isinstance(params, Mapping):
        raise OptionError("model_params", f"expected a mapping, got {params!r}")
    return TrainingOptions(
        lr_schedule=parse_schedule(
            values["lr_schedule"], learning_rate=learning_rate, epochs=epochs, warmup_epochs=warmup
        ),
        warmup_epochs=warmup,
        early_stopping=parse_early_stopping(values["early_stopping"]),
        checkpoint_monitor=_monitor(
            "checkpoint_monitor", values["checkpoint_monitor"], CHECKPOINT_MONITORS
        ),
        label_smoothing=_number("label_smoothing", values["label_smoothing"], 0, 1),
        weight_decay=None
        if weight_decay is None
        else _number("weight_decay", weight_decay, 0, float("inf")),
        batchnorm_momentum=None
        if momentum is None
        else _number("batchnorm_momentum", momentum, 0, 1),
        model_params=dict(params),
    )


def non_default_options(settings: Mapping[str, Any]) -> list[str]:
    """The options a run sets to other than their defaults (the baseline takes none)."""
    return [name for name, default in DEFAULTS.items() if settings.get(name, default) != default]
