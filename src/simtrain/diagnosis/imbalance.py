"""CLASS_IMBALANCE (unequal class counts in the data) and PREDICTION_COLLAPSE (a model that
predicts few classes for most images, which on balanced data is no imbalance of the data)."""

from __future__ import annotations

import math

import pandas as pd

from simtrain.diagnosis.findings import Finding, Skipped

# Class imbalance: the largest class twice the smallest lets a model gain accuracy by favouring
# it. Predictions "collapse" when a class receives twice its true share of predictions, or a
# class with at least 10 validation images is never predicted.
CLASS_COUNT_RATIO_LIMIT = 2.0
PREDICTION_COLLAPSE_FACTOR = 2.0
NEVER_PREDICTED_MIN_IMAGES = 10


def _count_problem(counts: dict, name: str, evidence: dict, prefix: str) -> str | None:
    """Record class counts in evidence; describe them when largest/smallest is over the limit."""
    counts = {str(key): int(value) for key, value in counts.items()}
    largest = max(counts, key=lambda key: (counts[key], key))
    smallest = min(counts, key=lambda key: (counts[key], key))
    ratio = counts[largest] / counts[smallest] if counts[smallest] else math.inf
    evidence |= {f"{prefix}_images_{key}": value for key, value in counts.items()}
    evidence[f"{prefix}_count_ratio"] = ratio  # inf (an empty class) is written as null
    if ratio <= CLASS_COUNT_RATIO_LIMIT:
        return None
    return (
        f"the {name} holds {counts[largest]} images of '{largest}' but {counts[smallest]} "
        f"of '{smallest}'"
    )


def _collapse_problem(predictions: pd.DataFrame, evidence: dict) -> str | None:
    """Record how predictions spread over classes; describe a collapse onto few classes."""
    true = predictions["true"].astype(str).value_counts().to_dict()
    predicted = predictions["predicted"].astype(str).value_counts().to_dict()
    top = max(predicted, key=lambda key: (predicted[key], key))
    top_share, true_share = predicted[top] / len(predictions), true.get(top, 0) / len(predictions)
    never = sorted(
        key
        for key, count in true.items()
        if count >= NEVER_PREDICTED_MIN_IMAGES and key not in predicted
    )
    evidence |= {
        "top_predicted_share": top_share,
        "top_predicted_true_share": true_share,
        "classes_never_predicted": len(never),
    }
    if top_share < PREDICTION_COLLAPSE_FACTOR * true_share and not never:
        return None
    return (
        f"the model predicts '{top}' for {top_share:.0%} of the validation images though "
        f"{true_share:.0%} are '{top}'" + (f", and never {', '.join(never)}" if never else "")
    )


def check_class_imbalance(
    train_label_counts: dict[str, int] | None, predictions: pd.DataFrame | None
) -> Finding | Skipped | None:
    """CLASS_IMBALANCE: the data's class counts (training, and validation's true labels)."""
    code = "CLASS_IMBALANCE"
    if predictions is not None and "true" not in predictions.columns:
        predictions = None
    if not train_label_counts and predictions is None:
        return Skipped(code, "no training label counts and no predictions to count classes in")
    evidence: dict = {}
    problems = []
    if train_label_counts:
        problems.append(_count_problem(train_label_counts, "training set", evidence, "train"))
    if predictions is not None:
        true = predictions["true"].astype(str).value_counts().to_dict()
        problems.append(_count_problem(true, "validation set", evidence, "validation"))
    problems = [problem for problem in problems if problem]
    if not problems:
        return None
    text = "; ".join(problems)
    return Finding(
        code,
        "warning",
        "Classes are imbalanced",
        evidence,
        text[0].upper() + text[1:] + ". A model can then lower its loss by favouring the "
        "frequent classes, and accuracy overstates how well it tells the classes apart.",
        "give every class the same number of images, or pass class_weight to fit",
    )


def check_prediction_collapse(predictions: pd.DataFrame | None) -> Finding | Skipped | None:
    """PREDICTION_COLLAPSE: the final model predicts few classes for most images, whatever the
    data's counts (on balanced data a collapse is the model's failure, not an imbalance)."""
    code = "PREDICTION_COLLAPSE"
    if predictions is None or not {"true", "predicted"} <= set(predictions.columns):
        return Skipped(code, "no final predictions (predictions.tsv) to count classes in")
    evidence: dict = {}
    collapse = _collapse_problem(predictions, evidence)
    if collapse is None:
        return None
    return Finding(
        code,
        "warning",
        "Predictions collapse onto few classes",
        evidence,
        collapse[0].upper() + collapse[1:] + ". The model has not learned to tell the "
        "classes apart: it falls back on one answer for most images.",
        "check the labels and the inputs (samples/model_view); lower the learning rate or "
        "train longer; see BATCHNORM_STATISTICS and UNDER_TRAINED if reported",
    )
