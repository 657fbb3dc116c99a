"""Train one deep run: full-coverage epochs by default, resumable, deterministic on CPU."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from simtrain.common.failpoints import failpoint
from simtrain.common.files import atomic_path, write_tsv
from simtrain.data.arrays import PackedSplit, stratified_subset
from simtrain.training import backend
from simtrain.training.batches import EpochSync, PackedBatches
from simtrain.training.callbacks import early_stopping_summary, option_callbacks, stopped_early
from simtrain.training.epoch_weights import publish_epoch_weights
from simtrain.training.models import build_model, custom_objects
from simtrain.training.optimization import compile_model
from simtrain.training.options import training_options
from simtrain.training.precise_bn import apply_precise_statistics
from simtrain.training.recorder import VALIDATION_RECORD, Recorder, restore, save_validation_record
from simtrain.training.schedules import learning_rate_schedule
from simtrain.training.tables import (
    BATCH_COLUMNS,
    HISTORY_COLUMNS,
    TIMING_COLUMNS,
    predictions_table,
    table,
    write_run_tables,
)

log = logging.getLogger(__name__)

BACKUP_DIR = ".backup"
LAST_EPOCHS = 3


@dataclass(frozen=True)
class RunSettings:
    model: str
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    steps_per_epoch: int | None
    validation_steps: int | None
    validation_shuffle: bool
    augmentation: dict
    standardize: bool
    train_images: int | None
    seed: int
    # Training options (simtrain.training.options, which checks them); absent keys take
    # these defaults, the schema's.
    lr_schedule: dict | None = None
    warmup_epochs: int = 0
    early_stopping: dict | None = None
    checkpoint_monitor: str = "val_loss"
    label_smoothing: float = 0.0
    weight_decay: float | None = None
    batchnorm_momentum: float | None = None
    model_params: dict = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> RunSettings:
        return cls(**{key: settings[key] for key in cls.__dataclass_fields__ if key in settings})


def fingerprint(settings: RunSettings, data_dirs: list[Path]) -> str:
    """Identifies what a backup was trained on; a mismatch means start afresh."""
    files = sorted(p for d in data_dirs for p in d.iterdir() if p.is_file())
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    text = json.dumps([asdict(settings), [str(d) for d in data_dirs], stats], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def train_run(
    *,
    run: str,
    settings: Mapping[str, Any],
    train_dir: str | os.PathLike,
    validation_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    resolved_config: Mapping[str, Any],
    replicate: int = 0,
    threads: int = 1,
    workers: int = 2,
    mixed_precision: str | bool = "auto",
    data_parallel: str | bool = "auto",
    search_path: str | os.PathLike | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, Any]:
    """Train, evaluate on the full validation set and write the run's artifacts to out_dir."""
    started = time.perf_counter()
    settings = RunSettings.from_mapping(settings)
    options = training_options(asdict(settings))  # a sibling's change is first checked here
    out_dir = Path(out_dir)
    runtime = backend.configure(
        settings.seed, threads=threads, mixed_precision=mixed_precision, data_parallel=data_parallel
    )
    train_split, validation_split = PackedSplit.load(train_dir), PackedSplit.load(validation_dir)
    if train_split.classes != validation_split.classes:
        raise ValueError(f"{train_dir} and {validation_dir} have different classes")
    subset = stratified_subset(train_split.labels, settings.train_images, settings.seed)
    train = PackedBatches(
        train_split,
        settings.batch_size,
        indices=subset,
        steps=settings.steps_per_epoch,
        shuffle=True,
        seed=settings.seed,
        workers=workers,
    )
    validation = PackedBatches(
        validation_split,
        settings.batch_size,
        steps=settings.validation_steps,
        shuffle=settings.validation_shuffle,
        continue_stream=settings.validation_shuffle,
        seed=settings.seed + 1,
        workers=workers,
    )
    coverage = min(len(train) * settings.batch_size, len(subset)) / len(subset)
    if coverage < 1:
        log.warning(
            "steps_per_epoch=%d x batch_size=%d covers only %.1f%% of the %d training images "
            "per epoch; each 'epoch' is a partial pass (the diagnostics will flag it)",
            len(train),
            settings.batch_size,
            100 * coverage,
            len(subset),
        )

    backup = out_dir / BACKUP_DIR
    key = fingerprint(settings, [Path(train_dir), Path(validation_dir)])
    with backend.distribution_scope(runtime):
        # A plug-in model's own classes, so its backup loads (built-ins need none).
        objects = custom_objects(settings.model, search_path)
        model, state, record = restore(backup, key, custom_objects=objects)
        schedule = learning_rate_schedule(
            options, settings.learning_rate, steps_per_epoch=len(train), epochs=settings.epochs
        )
        if model is None:
            model = build_model(
                settings.model,
                image_size=train_split.images.shape[1],
                num_classes=len(train_split.classes),
                pixel_dtype=train_split.images.dtype.name,
                augmentation=settings.augmentation,
                standardize=settings.standardize,
                seed=settings.seed,
                search_path=search_path,
                model_params=options.model_params,
            )
            compile_model(model, settings.optimizer, schedule, options)
        log.info("model %s: %d parameters", model.name, model.count_params())
        saved_states = state.get("callbacks", {})
        acting = option_callbacks(options, saved_states, backup)
        recorder = Recorder(
            backup,
            key,
            train,
            validation,
            state,
            record,
            monitor=options.checkpoint_monitor,
            schedule=schedule,
            resumable=acting,
        )
        done = len(state["history"])
        # No validation_data: the recorder scores validation image by image and logs val_*,
        # which the option callbacks act on before the epoch's backup is written.
        model.fit(
            train,
            # A run that early stopping ended (killed before its outputs) trains no more.
            epochs=done if stopped_early(saved_states) else settings.epochs,
            initial_epoch=done,
            shuffle=False,  # PackedBatches shuffles, reproducibly; Keras would reorder batches
            callbacks=[EpochSync(train, validation), recorder, *acting, recorder.saver()]
            + list(callbacks),
            verbose=2,
        )
        stopping = early_stopping_summary(acting)
        # The last epoch's validation already scored the final model on every image, in
        # order, unless validation was partial or shuffled, no epoch ran in this process, or
        # early stopping restored an earlier epoch's weights.
        restored = stopping is not None and stopping["restored_best_weights"]
        probabilities = None if restored else recorder.final_probabilities()
        if probabilities is None:
            full_validation = PackedBatches(
                validation_split, settings.batch_size, shuffle=False, workers=workers
            )
            probabilities = model.predict(full_validation, verbose=0)

    history = table(state["history"], HISTORY_COLUMNS)
    predictions = predictions_table(probabilities, validation_split.labels, train_split.classes)
    metrics = {
        "run": run,
        "replicate": replicate,
        "seed": settings.seed,
        "model": settings.model,
        "backend": runtime.backend,
        # How it ran (not rerun triggers, so recorded here): config `execution` and threads.
        "execution": {
            "loader_workers": workers,
            "mixed_precision": mixed_precision,
            "data_parallel": data_parallel,
            "threads": threads,
        },
        "devices": runtime.devices,
        "dtype_policy": runtime.dtype_policy,
        "train_images": len(subset),
        "validation_images": len(validation_split),
        "classes": train_split.classes,
        "epochs": settings.epochs,
        "epochs_run": len(history),
        "stopped_by": "early_stopping" if stopping and stopping["stopped_epoch"] else "epochs",
        "early_stopping": stopping,
        "checkpoint_monitor": options.checkpoint_monitor,
        "training_options": options.as_dict(),
        "train_coverage_per_epoch": round(coverage, 6),
        "final_val_accuracy": float((predictions["true"] == predictions["predicted"]).mean()),
        "best_val_accuracy": float(history["val_accuracy"].max()),
        # Robust to where the last epoch landed: the last LAST_EPOCHS epochs' mean.
        "last_epochs_val_accuracy": float(history["val_accuracy"].tail(LAST_EPOCHS).mean()),
        "best_epoch": int(state["best_epoch"]),
        "seconds": round(time.perf_counter() - started, 2),
        "images_per_second": round(
            float(np.mean([t["images_per_second"] for t in state["timing"]])), 2
        ),
        "parameters": int(model.count_params()),
    }
    with atomic_path(out_dir / "model.keras") as tmp:
        model.save(tmp)
    with atomic_path(out_dir / "best.keras") as tmp:
        shutil.copyfile(backup / "best.keras", tmp)
    # The robust score: the final weights with precise BN statistics (after model.keras is
    # saved, as it changes the model's statistics; without BatchNorm the same as the final).
    train_plain = PackedBatches(
        train_split, settings.batch_size, indices=subset, seed=settings.seed
    )
    if apply_precise_statistics(model, train_plain):
        probabilities = model.predict(
            PackedBatches(validation_split, settings.batch_size, shuffle=False), verbose=0
        )
    precise = predictions_table(probabilities, validation_split.labels, train_split.classes)
    metrics["precise_bn_val_accuracy"] = float((precise["true"] == precise["predicted"]).mean())
    with atomic_path(out_dir / "precise_bn.keras") as tmp:
        model.save(tmp)
    write_tsv(out_dir / "predictions_precise_bn.tsv", precise)
    failpoint("train.writing_outputs")
    write_tsv(out_dir / "batches.tsv", table(state["batches"], BATCH_COLUMNS))
    with atomic_path(out_dir / VALIDATION_RECORD) as tmp:
        save_validation_record(tmp, record)
    write_run_tables(
        out_dir,
        history=history,
        timing=table(state["timing"], TIMING_COLUMNS),
        predictions=predictions,
        metrics=metrics,
        resolved_config=resolved_config,
    )
    publish_epoch_weights(backup, out_dir)
    shutil.rmtree(backup)
    return metrics
