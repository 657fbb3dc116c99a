"""The diagnostics command line: `simtrain-diagnose` / `python -m simtrain.diagnose`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from simtrain.diagnosis.diagnostics import diagnose
from simtrain.diagnosis.history import read_history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simtrain.diagnose",
        description="Explain why a validation curve fluctuates, from a Keras CSVLogger file or "
        "simtrain's history.tsv. Exits 0 whenever the diagnosis ran.",
    )
    parser.add_argument("history", type=Path, help="CSVLogger .csv or simtrain history.tsv")
    for name in ("train-images", "validation-images", "batch-size"):
        parser.add_argument(f"--{name}", type=int, required=True)
    for name in ("steps-per-epoch", "validation-steps"):
        parser.add_argument(f"--{name}", type=int, help="omit when the whole set was used")
    parser.add_argument("--validation-shuffle", action="store_true", help="reshuffled per epoch")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--batches", type=Path, help="simtrain batches.tsv (per-batch losses)")
    parser.add_argument("--predictions", type=Path, help="simtrain predictions.tsv")
    parser.add_argument("--run", help="run name used in the fixes (default: from the path)")
    parser.add_argument("--json", action="store_true", help="print diagnostics.json instead")
    settings = vars(parser.parse_args(argv))
    history_path, as_json = settings.pop("history"), settings.pop("json")
    # results/runs/<run>/history.tsv -> <run>; keras.csv -> keras
    default_run = history_path.stem if history_path.stem != "history" else history_path.parent.name
    settings["run"] = settings["run"] or default_run or "run"
    try:
        history = read_history(history_path)
        for name in ("batches", "predictions"):
            settings[name] = pd.read_csv(settings[name], sep="\t") if settings[name] else None
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
        parser.exit(1, f"error: cannot read {error}\n")
    try:
        result = diagnose(history, **settings)
    except ValueError as error:
        parser.error(str(error))
    sys.stdout.write(result.to_json() if as_json else result.to_text())
    return 0
