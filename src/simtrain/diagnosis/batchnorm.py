"""BATCHNORM_STATISTICS: stored moving statistics versus statistics recomputed on training data."""

from __future__ import annotations

from simtrain.diagnosis.findings import Finding, RunSettings, Skipped

# BatchNorm: validation loss with stored moving statistics more than 10 % away from the loss with
# recomputed statistics, or accuracy 2 points away. Same weights, same full validation set, so
# the gap is not sampling noise; 10 % is larger than what rounding or augmentation explains.
BATCHNORM_LOSS_RELATIVE_GAP = 0.10
BATCHNORM_ACCURACY_GAP = 0.02
# Keras' default BatchNormalization momentum: moving statistics average over ~1/(1-0.99) steps.
KERAS_BATCHNORM_MOMENTUM = 0.99

BATCHNORM_KEYS = tuple(
    f"val_{m}_{s}" for m in ("loss", "accuracy") for s in ("moving", "recomputed")
)


def check_batchnorm(batchnorm: dict | None, settings: RunSettings) -> Finding | Skipped:
    code = "BATCHNORM_STATISTICS"
    if batchnorm is None:
        return Skipped(
            code,
            "needs the trained model (validation loss with stored vs "
            "recomputed BatchNorm statistics); none given, or no BatchNorm layers",
        )
    missing = [key for key in BATCHNORM_KEYS if key not in batchnorm]
    if missing:
        raise ValueError(f"batchnorm evidence lacks {missing}; expected keys {BATCHNORM_KEYS}")
    moving, recomputed, accuracy_moving, accuracy_recomputed = (
        float(batchnorm[key]) for key in BATCHNORM_KEYS
    )
    relative = abs(moving - recomputed) / max(abs(recomputed), 1e-12)
    accuracy_gap = accuracy_moving - accuracy_recomputed
    # `not <=` so that a NaN gap counts as large
    large = (
        not relative <= BATCHNORM_LOSS_RELATIVE_GAP or abs(accuracy_gap) > BATCHNORM_ACCURACY_GAP
    )
    evidence = {key: float(batchnorm[key]) for key in BATCHNORM_KEYS}
    evidence |= {
        "val_loss_relative_gap": relative,
        "val_accuracy_gap": accuracy_gap,
        "relative_gap_limit": BATCHNORM_LOSS_RELATIVE_GAP,
    }
    explanation = (
        f"With the same weights, validation loss is {moving:.3g} with the stored BatchNorm "
        f"moving statistics and {recomputed:.3g} with statistics recomputed over training data "
        f"({relative:.0%} apart; accuracy {accuracy_moving:.1%} vs {accuracy_recomputed:.1%})."
    )
    title, fix = "BatchNorm moving statistics match the weights", "nothing to change"
    if not large:
        explanation += " The stored statistics are not what moves the curve."
    else:
        title = "Validation is distorted by lagging BatchNorm moving statistics"
        fix = (
            f"raise {settings.key('batch_size')} (steadier batch statistics), lower the "
            f"BatchNormalization momentum (e.g. 0.9) so the averages keep up within an "
            f"epoch, or recompute the statistics on training data after training (precise-BN)"
        )
        explanation += (
            " In inference mode BatchNorm layers normalise with moving averages that trail the "
            "changing weights (and are noisy for small batches), so validation jumps with them "
            "even when the model has barely changed."
        )
        if settings.steps_per_epoch is not None:
            explanation += (
                f" With Keras' default momentum {KERAS_BATCHNORM_MOMENTUM} the averages span "
                f"~{round(1 / (1 - KERAS_BATCHNORM_MOMENTUM))} steps, but an epoch here has "
                f"{settings.steps_per_epoch}: they still partly describe earlier epochs' weights."
            )
    return Finding(code, "warning" if large else "info", title, evidence, explanation, fix)
