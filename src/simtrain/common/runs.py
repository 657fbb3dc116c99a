"""Names and settings of the jobs a configured run becomes: seed replicates and fix siblings.

Plain Python (no numpy, no Keras): the Snakefile, the diagnosis and the reporting all use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A fix-verification sibling is named <run>--fix-<finding code>, e.g. r--fix-partial_epoch.
FIX_SEPARATOR = "--fix-"
# Keys that say how many jobs a run becomes, not how one trains: never passed to training,
# so changing them reruns nothing that exists.
WORKFLOW_KEYS = ("repeats", "verify_fixes")


def replicate_settings(settings: Mapping[str, Any], replicate: int) -> dict[str, Any]:
    """What replicate k of a run trains with: the run's seed + k, workflow keys dropped."""
    trained = {key: value for key, value in settings.items() if key not in WORKFLOW_KEYS}
    trained["seed"] = settings["seed"] + replicate
    return trained


def sibling_name(run: str, code: str) -> str:
    """The run that verifies the fix of finding `code` of `run`."""
    return f"{run}{FIX_SEPARATOR}{code.lower()}"


def parse_sibling(name: str) -> tuple[str, str | None]:
    """(parent run, finding code) of a sibling's name; (name, None) for a configured run."""
    parent, separator, code = name.partition(FIX_SEPARATOR)
    return (parent, code.upper()) if separator else (name, None)


def apply_change(settings: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with `change` applied; a mapping (augmentation, early_stopping) is updated
    key by key, unless the change names another `kind` (lr_schedule): a different kind has
    other parameters, so it replaces the whole mapping."""
    changed = dict(settings)
    for key, value in change.items():
        current = changed.get(key)
        if (
            isinstance(value, Mapping)
            and isinstance(current, Mapping)
            and value.get("kind", current.get("kind")) == current.get("kind")
        ):
            changed[key] = {**current, **value}
        else:
            changed[key] = value
    return changed
