"""The diagnostics command line: `simtrain-diagnose` / `python -m simtrain.diagnose`."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import pandas as pd

from simtrain.diagnosis.diagnostics import diagnose
from simtrain.diagnosis.history import read_history
from simtrain.diagnosis.validation_record import load_validation_record
from simtrain.training.tables import read_predictions

COUNT_HELP = {
    "train-images": "number of training images (one full pass)",
    "validation-images": "number of validation images (N)",
    "batch-size": "images per batch (training and validation)",
    "steps-per-epoch": "training steps per epoch; omit when every epoch covered the training set",
    "validation-steps": "validation steps per epoch; omit when the whole validation set was scored",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simtrain.diagnose",
        description="Explain why a validation curve fluctuates, from a Keras CSVLogger file or "
        "simtrain's history.tsv. Exits 0 whenever the diagnosis ran.",
    )
    parser.add_argument("history", type=Path, help="CSVLogger .csv or simtrain history.tsv")
    for name in ("train-images", "validation-images", "batch-size"):
        parser.add_argument(f"--{name}", type=int, required=True, help=COUNT_HELP[name])
    for name in ("steps-per-epoch", "validation-steps"):
        parser.add_argument(f"--{name}", type=int, help=COUNT_HELP[name])
    parser.add_argument(
        "--validation-shuffle",
        action="store_true",
        help="the validation data was reshuffled every epoch (with --validation-steps: a "
        "different random subset scored each epoch)",
    )
    parser.add_argument("--learning-rate", type=float, help="the optimizer's learning rate")
    parser.add_argument("--epochs", type=int, help="epochs the run was configured for")
    parser.add_argument(
        "--augmentation",
        choices=("on", "off"),
        help="whether training augmented its images (fixes then never advise what is set)",
    )
    parser.add_argument("--batches", type=Path, help="simtrain batches.tsv (per-batch losses)")
    parser.add_argument("--predictions", type=Path, help="simtrain predictions.tsv")
    parser.add_argument(
        "--validation-record",
        type=Path,
        help="simtrain validation_record.npz (per epoch and image: right/wrong and loss); makes "
        "the noise tests paired",
    )
    parser.add_argument("--run", help="run name used in the fixes (default: from the path)")
    parser.add_argument("--json", action="store_true", help="print diagnostics.json instead")
    settings = vars(parser.parse_args(argv))
    history_path, as_json = settings.pop("history"), settings.pop("json")
    # results/runs/<run>/history.tsv -> <run>; keras.csv -> keras
    default_run = history_path.stem if history_path.stem != "history" else history_path.parent.name
    settings["run"] = settings["run"] or default_run or "run"
    augmentation = settings.pop("augmentation")
    settings["augmentation"] = None if augmentation is None else augmentation == "on"
    try:
        history = read_history(history_path)
        for name in ("batches", "predictions"):
            reader = read_predictions if name == "predictions" else partial(pd.read_csv, sep="\t")
            settings[name] = reader(settings[name]) if settings[name] else None
        if settings["validation_record"] is not None:
            settings["validation_record"] = load_validation_record(settings["validation_record"])
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
        parser.exit(1, f"error: cannot read {error}\n")
    try:
        result = diagnose(history, **settings)
    except ValueError as error:
        parser.error(str(error))
    sys.stdout.write(result.to_json() if as_json else result.to_text())
    return 0
