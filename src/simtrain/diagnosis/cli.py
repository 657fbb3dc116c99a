"""The diagnostics command line: `simtrain-diagnose` (or `python -m simtrain.diagnose`)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

import pandas as pd
import yaml

from simtrain.diagnosis.diagnostics import Diagnostics, diagnose
from simtrain.diagnosis.findings import RunSettings
from simtrain.diagnosis.history import read_history
from simtrain.diagnosis.run_dir import diagnose_run_dir
from simtrain.diagnosis.validation_record import load_validation_record
from simtrain.training.tables import read_predictions

COUNT_HELP = {
    "train-images": "number of training images (one full pass)",
    "validation-images": "number of validation images (N)",
    "batch-size": "images per batch (training and validation)",
    "steps-per-epoch": "training steps per epoch; omit when every epoch covered the training set",
    "validation-steps": "validation steps per epoch; omit when the whole validation set was scored",
}
REQUIRED_COUNTS = ("train-images", "validation-images", "batch-size")
# Options that describe a history file's run; a run folder records all of them itself.
FILE_ONLY = (
    *REQUIRED_COUNTS,
    "steps-per-epoch",
    "validation-steps",
    "validation-shuffle",
    "learning-rate",
    "epochs",
    "augmentation",
    "batches",
    "predictions",
    "validation-record",
)
# Where plain Keras takes what the workflow's runs.<run>.<key> config keys set.
KERAS_ARGUMENTS = {
    "steps_per_epoch": "model.fit's steps_per_epoch",
    "validation_steps": "model.fit's validation_steps",
    "epochs": "model.fit's epochs",
    "batch_size": "the batch_size",
    "learning_rate": "the optimizer's learning_rate",
    "augmentation": "the augmentation",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simtrain-diagnose",
        description="Explain why a validation curve fluctuates, from a Keras CSVLogger file, "
        "simtrain's history.tsv or a workflow run folder (results/runs/<run>/seed-<k>/, whose "
        "counts, settings and model it reads itself). Also `python -m simtrain.diagnose`. "
        "Exits 0 whenever the diagnosis ran.",
    )
    parser.add_argument(
        "history", type=Path, help="CSVLogger .csv, simtrain history.tsv or a run folder"
    )
    for name in REQUIRED_COUNTS:
        parser.add_argument(f"--{name}", type=int, help=f"{COUNT_HELP[name]} (required for a file)")
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
    parser.add_argument(
        "--packed",
        type=Path,
        help="for a run folder: the workflow's packed data (results/packed, with train/ and "
        "validation/) its model is scored on for the BatchNorm and augmentation checks "
        "(default: the results/packed beside results/runs/)",
    )
    parser.add_argument("--run", help="run name used in the fixes (default: from the path)")
    parser.add_argument("--json", action="store_true", help="print diagnostics.json instead")
    return parser


def keras_advice(result: Diagnostics) -> Diagnostics:
    """For a plain Keras history: fixes name the Keras argument (model.fit's steps_per_epoch)
    instead of the workflow's config key (runs.<run>.steps_per_epoch) the checks write."""
    prefix = RunSettings(run=result.run, train_images=1, validation_images=1, batch_size=1)
    pattern = re.compile(re.escape(prefix.key("")) + r"(\w+)")

    def rename(text: str) -> str:
        return pattern.sub(lambda match: KERAS_ARGUMENTS.get(match[1], match[1]), text)

    findings = tuple(
        replace(f, fix=rename(f.fix), explanation=rename(f.explanation)) for f in result.findings
    )
    skipped = tuple(replace(s, reason=rename(s.reason)) for s in result.skipped)
    return replace(result, findings=findings, skipped=skipped)


def diagnose_file(parser: argparse.ArgumentParser, settings: dict) -> Diagnostics:
    """A history file with the counts and settings given on the command line."""
    missing = [f"--{name}" for name in REQUIRED_COUNTS if settings[name.replace("-", "_")] is None]
    if missing:
        parser.error(f"{', '.join(missing)} required for a history file (a run folder has them)")
    if settings.pop("packed") is not None:
        parser.error("--packed goes with a workflow run folder (results/runs/<run>/seed-<k>)")
    history_path = settings.pop("history")
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
    # simtrain's own history.tsv comes from a configured run; anything else from plain Keras.
    return result if "train_images_seen" in history.columns else keras_advice(result)


RUN_FILES = ("history.tsv", "metrics.json", "config.resolved.yaml")


def read_run_folder(run_dir: Path) -> tuple[str, dict]:
    """(run name, the settings it trained with), from metrics.json and config.resolved.yaml."""
    run = json.loads((run_dir / "metrics.json").read_text())["run"]
    resolved = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    return run, resolved["runs"][run]


def diagnose_run_folder(parser: argparse.ArgumentParser, settings: dict) -> Diagnostics:
    """A workflow run folder, diagnosed as the workflow does it: counts and settings from its
    metrics.json and config.resolved.yaml, model evidence from its model and the packed data."""
    given = [
        f"--{name}" for name in FILE_ONLY if settings[name.replace("-", "_")] not in (None, False)
    ]
    if given:
        parser.error(
            f"{', '.join(given)}: a run folder's counts and settings come from its metrics.json "
            "and config.resolved.yaml; give them only with a history file"
        )
    run_dir = settings["history"]
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        parser.exit(1, f"error: {run_dir} is not a workflow run folder: no {', '.join(missing)}\n")
    run, run_settings = read_run_folder(run_dir)
    # results/runs/<run>/seed-<k> -> results/packed
    packed = settings["packed"] or run_dir.resolve().parents[2] / "packed"
    if not all((packed / split / "classes.json").is_file() for split in ("train", "validation")):
        parser.exit(1, f"error: no packed data in {packed} (train/, validation/); give --packed\n")
    # The run's other seeds (results/runs/<run>/seed-*), as the workflow passes them.
    replicates = [
        folder
        for folder in sorted(run_dir.resolve().parent.glob("seed-*"))
        if folder != run_dir.resolve() and (folder / "history.tsv").is_file()
    ]
    with tempfile.TemporaryDirectory() as scratch:  # the workflow's files are not rewritten
        return diagnose_run_dir(
            run_dir,
            run=settings["run"] or run,
            settings=run_settings,
            train_dir=packed / "train",
            validation_dir=packed / "validation",
            json_path=Path(scratch) / "diagnostics.json",
            markdown_path=Path(scratch) / "diagnostics.md",
            search_path=os.getcwd(),
            replicate_dirs=replicates,
        )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    settings = vars(parser.parse_args(argv))
    as_json = settings.pop("json")
    if settings["history"].is_dir():
        result = diagnose_run_folder(parser, settings)
    else:
        result = diagnose_file(parser, settings)
    sys.stdout.write(result.to_json() if as_json else result.to_text())
    return 0
