"""Diagnose one finished run folder of the workflow (the diagnose rule's library side)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simtrain.diagnosis.diagnostics import Diagnostics, diagnose
from simtrain.diagnosis.history import read_history
from simtrain.diagnosis.noise import MOVEMENT_ALPHA
from simtrain.diagnosis.validation_record import load_validation_record
from simtrain.training.tables import read_predictions


def _augmented(augmentation: Mapping[str, Any]) -> bool:
    """Whether the run's augmentation warps or flips anything (RandomAffine.is_identity)."""
    keys = ("shear", "zoom", "horizontal_flip")
    return any(bool(augmentation.get(key)) for key in keys)


def _replicate_curves(replicate_dirs: Sequence[str | os.PathLike]) -> tuple[np.ndarray, ...]:
    """val_accuracy per epoch of the run's other seed replicates."""
    curves = []
    for directory in replicate_dirs:
        history = read_history(Path(directory) / "history.tsv")
        values = pd.to_numeric(history.get("val_accuracy"), errors="coerce").to_numpy(float)
        curves.append(values[np.isfinite(values)])
    return tuple(curves)


def _sim_to_real(run_dir: Path, classes: list[str], evaluation: Mapping) -> list:
    """SIM_TO_REAL_GAP per real-image set: validation against real accuracy, both under the
    comparison's measure (precise BatchNorm statistics where the run has them)."""
    from simtrain.diagnosis.sim_to_real import sim_to_real_findings
    from simtrain.evaluation.scoring import read_set_predictions

    robust = run_dir / "predictions_precise_bn.tsv"
    validation = read_predictions(robust if robust.exists() else run_dir / "predictions.tsv")
    sets = {name: read_set_predictions(path) for name, path in evaluation.items()}
    return sim_to_real_findings(validation=validation, sets=sets, classes=classes)


def evidence_epochs(result: Diagnostics, epochs: int) -> list[int]:
    """The epochs whose model evidence can attribute the curve's movement: every epoch when it
    moves beyond its noise throughout, the glitch and its neighbours for one epoch."""
    fluctuation = result.fluctuation or {}
    if not fluctuation.get("beyond_noise"):
        return []
    noise = next(f for f in result.findings if f.code == "VALIDATION_SAMPLING_NOISE")
    movement_p = noise.evidence.get("movement_p")
    if movement_p is not None and movement_p < MOVEMENT_ALPHA:
        return list(range(noise.evidence.get("warmup_epochs", 0) + 1, epochs + 1))
    glitch = noise.evidence.get("glitch_epoch")
    return [] if glitch is None else [e for e in (glitch - 1, glitch, glitch + 1) if e >= 1]


def diagnose_run_dir(
    run_dir: str | os.PathLike,
    *,
    run: str,
    settings: Mapping[str, Any],
    train_dir: str | os.PathLike,
    validation_dir: str | os.PathLike,
    json_path: str | os.PathLike,
    markdown_path: str | os.PathLike,
    search_path: str | os.PathLike | None = None,
    replicate_dirs: Sequence[str | os.PathLike] = (),
    evaluation: Mapping[str, str | os.PathLike] | None = None,
) -> Diagnostics:
    """Diagnose results/runs/{run}/seed-{k}/ and write diagnostics.json/.md; `search_path` is
    where a plug-in model's module imports from (its classes are needed to load the model);
    `replicate_dirs` are the run's other seed replicates (their curves join the estimate of
    ordinary training movement); `evaluation` maps each labelled real-image set to this
    replicate's predictions on it (SIM_TO_REAL_GAP).

    When the curve moves beyond its noise and training kept each epoch's weights, the model
    evidence is repeated at the epochs concerned, so a cause is named where the jumps are.
    """
    run_dir, train_dir = Path(run_dir), Path(train_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    classes = json.loads((train_dir / "classes.json").read_text())
    labels = np.load(train_dir / "labels.npy")
    counts = np.bincount(labels, minlength=len(classes))
    batches = run_dir / "batches.tsv"
    record = run_dir / "validation_record.npz"
    model = run_dir / "model.keras"
    evidence, objects = None, None
    if model.exists():
        # Imported here: the baseline's diagnosis needs no deep-learning framework.
        from simtrain.diagnosis.model_evidence import batchnorm_evidence
        from simtrain.training.models import custom_objects

        objects = custom_objects(settings["model"], search_path)
        evidence = batchnorm_evidence(
            model,
            train_dir,
            validation_dir,
            batch_size=settings["batch_size"],
            seed=settings["seed"],
            train_images=settings["train_images"],
            custom_objects=objects,
        )
    is_baseline = settings["model"] == "baseline"
    history = read_history(run_dir / "history.tsv")
    inputs = dict(
        run=run,
        train_images=metrics["train_images"],
        validation_images=metrics["validation_images"],
        batch_size=settings["batch_size"],
        steps_per_epoch=None if is_baseline else settings["steps_per_epoch"],
        validation_steps=None if is_baseline else settings["validation_steps"],
        validation_shuffle=settings["validation_shuffle"],
        batches=pd.read_csv(batches, sep="\t") if batches.exists() else None,
        predictions=read_predictions(run_dir / "predictions.tsv"),
        batchnorm=evidence,
        train_label_counts=dict(zip(classes, counts.tolist())),
        learning_rate=None if is_baseline else settings["learning_rate"],
        optimizer=None if is_baseline else settings["optimizer"],
        validation_record=load_validation_record(record) if record.exists() else None,
        augmentation=None if is_baseline else _augmented(settings.get("augmentation") or {}),
        epochs=None if is_baseline else settings["epochs"],
        replicate_curves=_replicate_curves(replicate_dirs),
        lr_schedule=None
        if is_baseline
        else (settings.get("lr_schedule") or {}).get("kind", "none"),
        train_subset=settings.get("train_images") is not None,
    )
    result = diagnose(history, **inputs)
    wanted = evidence_epochs(result, len(history)) if evidence is not None else []
    if wanted:
        from simtrain.diagnosis.model_evidence import epoch_evidence

        per_epoch = epoch_evidence(
            model,
            run_dir,
            train_dir,
            validation_dir,
            epochs=wanted,
            batch_size=settings["batch_size"],
            seed=settings["seed"],
            train_images=settings["train_images"],
            custom_objects=objects,
        )
        if per_epoch is not None:
            result = diagnose(history, **inputs, epoch_evidence=per_epoch)
    if evaluation:
        result = result.with_findings(_sim_to_real(run_dir, classes, evaluation))
    result.write(json_path, markdown_path)
    return result
