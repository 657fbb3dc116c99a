"""Partial epochs and partial validation: how much of each split an epoch really used."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from simtrain.diagnosis.findings import Finding, RunSettings, finite_column

# An epoch covering under half of the training set is at least twice as short as its name says:
# "epochs" on the x-axis then badly overstate how often the model has seen the data.
PARTIAL_EPOCH_CRITICAL_FRACTION = 0.5


def check_partial_epoch(history: pd.DataFrame, settings: RunSettings) -> Finding | None:
    steps, batch, total = settings.steps_per_epoch, settings.batch_size, settings.train_images
    if steps is None or steps * batch >= total:
        return None
    per_epoch, full_steps, epochs_run = steps * batch, math.ceil(total / batch), len(history)
    fraction, passes = per_epoch / total, epochs_run * per_epoch / total
    epochs_for_pass = math.ceil(total / per_epoch)
    evidence: dict = {
        "train_images": total,
        "batch_size": batch,
        "steps_per_epoch": steps,
        "images_per_epoch": per_epoch,
        "fraction_per_epoch": fraction,
        "epochs_to_see_every_image": epochs_for_pass,
        "epochs_run": epochs_run,
        "full_steps_per_epoch": full_steps,
        "full_passes_run": passes,
    }
    # Never advise the epochs the run already has (a fraction near 1 rounds back to them).
    configured = settings.epochs if settings.epochs is not None else epochs_run
    same_updates = ""
    if math.ceil(passes) != configured:
        same_updates = (
            f"; to keep the number of updates, set {settings.key('epochs')}: {math.ceil(passes)}"
        )
    coverage = finite_column(history, "train_coverage")
    if coverage.size:
        evidence["observed_mean_train_coverage"] = float(np.mean(coverage))
    return Finding(
        "PARTIAL_EPOCH",
        "critical" if fraction < PARTIAL_EPOCH_CRITICAL_FRACTION else "warning",
        f"Each epoch trains on only {fraction:.1%} of the training images",
        evidence,
        f"steps_per_epoch={steps} × batch_size={batch} = {per_epoch} images per epoch, but the "
        f"training set has {total}: each 'epoch' covers {fraction:.1%} of it, and it takes at "
        f"least {epochs_for_pass} epochs to show the model every image once; the {epochs_run} "
        f"epochs run add up to {passes:.2g} passes. An epoch's training loss averages over few "
        f"images, the model is validated after every {fraction:.0%} of a real pass while it "
        f"still changes fast, and a pipeline that restarts each epoch unshuffled never shows "
        f"it the rest.",
        f"set {settings.key('steps_per_epoch')}: null (Keras: steps_per_epoch=None) so every "
        f"epoch covers all {total} images ({full_steps} steps of {batch})" + same_updates,
        change={"steps_per_epoch": None},
    )


def check_partial_validation(history: pd.DataFrame, settings: RunSettings) -> Finding | None:
    steps, batch, total = settings.validation_steps, settings.batch_size, settings.validation_images
    if steps is None or total <= 0 or steps * batch >= total:
        return None
    scored, shuffle = steps * batch, settings.validation_shuffle
    fraction = scored / total
    if shuffle:
        consequence = (
            "The validation data is shuffled, so each epoch scored a DIFFERENT random part: "
            "consecutive points of the curve compare the model on different samples, and part "
            "of their ups and downs is only which images were drawn."
        )
    else:
        consequence = (
            "They are always the same first images: the curve is consistent but describes only "
            "that slice, which may hold only some classes when images are ordered by class "
            "folder (as flow_from_directory without shuffle orders them)."
        )
    return Finding(
        "PARTIAL_VALIDATION",
        "warning",
        f"Each epoch scores only {fraction:.1%} of the validation images",
        {
            "validation_images": total,
            "batch_size": batch,
            "validation_steps": steps,
            "images_scored_per_epoch": scored,
            "fraction_per_epoch": fraction,
            "validation_shuffle": shuffle,
        },
        f"validation_steps={steps} × batch_size={batch} = {scored} of {total} validation images "
        f"({fraction:.1%}) are scored per epoch. {consequence}",
        f"set {settings.key('validation_steps')}: null (Keras: validation_steps=None) so every "
        f"epoch scores all {total} images ({math.ceil(total / batch)} steps of {batch})",
        change={"validation_steps": None},
    )
