"""Explain why a validation curve fluctuates: `diagnose(history, ...)` and its command line.

    uv run python -m simtrain.diagnose history.csv --train-images 32000 \
        --validation-images 8000 --batch-size 128 --steps-per-epoch 31 --validation-steps 9

The centre is the sampling-noise band: the epoch-to-epoch noise a validation score must show
just because it averages over m images (binomial for accuracy, per-image loss spread for loss),
compared with the noise the curve really shows. The fluctuation score is their ratio: ~1 means
"as noisy as the validation-set size explains", >>1 means the model itself jumps around, and
the other findings (diagnostics_findings.py) say why.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.diagnostics_findings import (
    Finding,
    RunSettings,
    Skipped,
    check_batchnorm,
    check_class_imbalance,
    check_overfitting,
    check_partial_epoch,
    check_partial_validation,
    check_unstable_optimization,
    finite_column,
    plain_number,
)

# Fewer epochs cannot separate fluctuation from trend (it takes two first differences at least).
MIN_EPOCHS_FOR_NOISE = 3
# Turns a median absolute deviation into a standard deviation for normally distributed noise.
MAD_TO_SD = 1.4826
# Observed noise above twice the expected is "beyond the band": the robust estimate from 10-20
# epochs is uncertain by about +-30 %, so 2x is some three standard errors away.
NOISE_BAND_LIMIT = 2.0
SAMPLING_NOISE = "VALIDATION_SAMPLING_NOISE"
# Keras 2 CSVLogger names -> Keras 3 / our names.
KERAS_2_COLUMNS = {"acc": "accuracy", "val_acc": "val_accuracy", "lr": "learning_rate"}


@dataclass(frozen=True)
class NoiseEstimate:
    """Per-epoch noise of the validation curve: expected from the set size, observed in the curve.

    Observed noise is the robust spread of first differences: differences remove a slow trend,
    median and median absolute deviation ignore the few large steps of the epochs in which the
    model learns fastest, and /sqrt(2) because a difference of two noisy values has sqrt(2)
    times their spread. Expected noise treats the m images scored as a sample of the simulated
    population; with the same images every epoch it is an upper bound.
    """

    images_scored: int | None  # validation images scored per epoch (m)
    epochs: int
    accuracy_mean: float | None
    accuracy_expected: float | None  # sqrt(p(1-p)/m), root mean square over epochs
    accuracy_observed: float | None
    loss_per_image_sd: float | None  # of the final model on the full validation set
    loss_expected: float | None  # loss_per_image_sd / sqrt(m)
    loss_observed: float | None

    def ratio(self, metric: str) -> float | None:
        expected = getattr(self, f"{metric}_expected")
        observed = getattr(self, f"{metric}_observed")
        return None if not expected or observed is None else observed / expected

    @property
    def metric(self) -> str | None:
        """The metric of the fluctuation score: val_loss when it has a band, else val_accuracy."""
        return next((m for m in ("loss", "accuracy") if self.ratio(m) is not None), None)

    @property
    def score(self) -> float | None:
        return None if self.metric is None else self.ratio(self.metric)

    @property
    def beyond_band(self) -> bool:
        return any((self.ratio(m) or 0) > NOISE_BAND_LIMIT for m in ("loss", "accuracy"))


def detrended_noise(values: np.ndarray) -> float | None:
    """Per-epoch noise of a curve with its slow trend removed (see NoiseEstimate)."""
    if values.size < MIN_EPOCHS_FOR_NOISE:
        return None
    differences = np.diff(values)
    mad = np.median(np.abs(differences - np.median(differences)))
    return float(MAD_TO_SD * mad / math.sqrt(2))


def images_scored_per_epoch(history: pd.DataFrame, settings: RunSettings) -> int | None:
    """Validation images scored per epoch: logged by our training stage, else from the settings."""
    seen = finite_column(history, "validation_images_seen")
    if seen.size and np.median(seen) > 0:
        return int(np.median(seen))
    if settings.validation_images <= 0:
        return None
    if settings.validation_steps is None:
        return settings.validation_images
    return min(settings.validation_steps * settings.batch_size, settings.validation_images)


def estimate_noise(
    history: pd.DataFrame, settings: RunSettings, predictions: pd.DataFrame | None
) -> NoiseEstimate | Skipped:
    accuracy = finite_column(history, "val_accuracy")
    loss = finite_column(history, "val_loss")
    epochs = max(accuracy.size, loss.size)
    if epochs == 0:
        return Skipped(
            SAMPLING_NOISE,
            "the history has no val_loss or val_accuracy values: "
            "the run was trained without validation data",
        )
    if epochs < MIN_EPOCHS_FOR_NOISE:
        return Skipped(
            SAMPLING_NOISE,
            f"only {epochs} epoch(s) with a validation score; at "
            f"least {MIN_EPOCHS_FOR_NOISE} are needed to tell fluctuation from trend",
        )
    m = images_scored_per_epoch(history, settings)
    p = np.clip(accuracy, 0.0, 1.0)
    per_image = finite_column(predictions, "loss")
    loss_sd = float(np.std(per_image, ddof=1)) if per_image.size >= 2 else None
    return NoiseEstimate(
        images_scored=m,
        epochs=epochs,
        accuracy_mean=float(p.mean()) if p.size else None,
        accuracy_expected=float(np.sqrt(np.mean(p * (1 - p)) / m)) if m and p.size else None,
        accuracy_observed=detrended_noise(accuracy),
        loss_per_image_sd=loss_sd,
        loss_expected=loss_sd / math.sqrt(m) if m and loss_sd is not None else None,
        loss_observed=detrended_noise(loss),
    )


def check_sampling_noise(
    noise: NoiseEstimate | Skipped, settings: RunSettings
) -> Finding | Skipped:
    if isinstance(noise, Skipped):
        return noise
    if noise.score is None:
        return Skipped(
            SAMPLING_NOISE,
            "no expected noise: the validation images scored per "
            "epoch are unknown, or only val_loss was logged and no per-image "
            "validation losses (predictions.tsv) were given",
        )
    m, parts = noise.images_scored, []
    evidence: dict = {
        "validation_images_scored_per_epoch": m,
        "epochs": noise.epochs,
        "band_limit": NOISE_BAND_LIMIT,
        "fluctuation_score": noise.score,
    }
    for metric in ("accuracy", "loss"):
        expected = getattr(noise, f"{metric}_expected")
        observed = getattr(noise, f"{metric}_observed")
        if expected is not None:
            evidence |= {
                f"val_{metric}_expected_noise": expected,
                f"val_{metric}_observed_noise": observed,
                f"val_{metric}_noise_ratio": noise.ratio(metric),
            }
    if noise.accuracy_expected is not None:
        parts.append(
            f"at a mean val_accuracy of {noise.accuracy_mean:.1%} the binomial standard "
            f"error is ±{noise.accuracy_expected:.3g}, observed "
            f"±{noise.accuracy_observed:.3g}"
        )
    if noise.loss_expected is not None:
        parts.append(
            f"per-image losses spread by {noise.loss_per_image_sd:.3g}, so their mean "
            f"has a standard error of ±{noise.loss_expected:.3g}, observed "
            f"±{noise.loss_observed:.3g}"
        )
    else:
        parts.append("without per-image validation losses (predictions.tsv) val_loss has no band")
    explanation = (
        f"Each epoch scored {m} validation images: {'; '.join(parts)}. Observed noise "
        f"is the spread of epoch-to-epoch changes with the trend removed (median "
        f"absolute deviation of first differences / √2)."
    )
    if noise.beyond_band:
        return Finding(
            SAMPLING_NOISE,
            "warning",
            "Validation curve fluctuates beyond its sampling noise",
            evidence,
            explanation + " The curve moves more than the number of validation "
            "images explains, so the model itself changes from epoch to epoch: the other "
            "findings say why.",
            f"remove the causes named by the other findings; if none applies, lower "
            f"{settings.key('learning_rate')} or raise {settings.key('batch_size')}",
        )
    return Finding(
        SAMPLING_NOISE,
        "info",
        "Validation curve fluctuates within its sampling noise",
        evidence,
        explanation + " That is what a validation sample of this size produces: "
        "measurement noise, not a change in the model.",
        f"nothing must change; to narrow the band (it shrinks as 1/√images) set "
        f"{settings.key('validation_steps')}: null or simulate more images (images_per_class)",
    )


def check_stable(
    findings: list[Finding], noise: NoiseEstimate | Skipped
) -> Finding | Skipped | None:
    if any(finding.severity != "info" for finding in findings):
        return None
    if isinstance(noise, Skipped) or noise.score is None:
        return Skipped("STABLE", "no validation curve with a noise band to judge")
    return Finding(
        "STABLE",
        "info",
        "Learning curve is stable",
        {"fluctuation_score": noise.score, "epochs": noise.epochs},
        f"No check found a problem and the validation curve moves by {noise.score:.2f}× the "
        f"noise its {noise.images_scored} scored images explain: its wiggles are measurement "
        f"noise.",
        "nothing to change",
    )


@dataclass(frozen=True)
class Diagnostics:
    """All findings for one run, in a fixed order, serialisable to diagnostics.json/.md."""

    run: str
    fluctuation_score: float | None
    fluctuation_metric: str | None  # "val_loss" | "val_accuracy" | None
    findings: tuple[Finding, ...]
    skipped: tuple[Skipped, ...]

    @property
    def codes(self) -> list[str]:
        return [finding.code for finding in self.findings]

    def to_dict(self) -> dict:
        return {
            "run": self.run,
            "fluctuation_score": plain_number(self.fluctuation_score)
            if self.fluctuation_score is not None
            else None,
            "fluctuation_metric": self.fluctuation_metric,
            "findings": [vars(finding).copy() for finding in self.findings],
            "skipped": [vars(skip).copy() for skip in self.skipped],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def _score_line(self) -> str:
        if self.fluctuation_score is None:
            return "Fluctuation score: not available (too few epochs or no noise estimate)."
        return (
            f"Fluctuation score: {plain_number(self.fluctuation_score)} — {self.fluctuation_metric}"
            f" varies {self.fluctuation_score:.2g}× as much as the validation images scored "
            f"explain (≈1: measurement noise; ≫1: the model itself jumps)."
        )

    def to_markdown(self) -> str:
        lines = [f"# Diagnostics for run `{self.run}`", "", self._score_line(), ""]
        for finding in self.findings:
            lines += [
                f"## {finding.severity.upper()} · `{finding.code}` — {finding.title}",
                "",
                "| evidence | value |",
                "|---|---|",
            ]
            lines += [f"| {key} | {_cell(value)} |" for key, value in finding.evidence.items()]
            lines += ["", finding.explanation, "", f"**Fix:** {finding.fix}", ""]
        if self.skipped:
            lines += ["## Skipped checks", ""]
            lines += [f"- `{skip.code}`: {skip.reason}" for skip in self.skipped]
            lines.append("")
        return "\n".join(lines)

    def to_text(self) -> str:
        lines = [f"Diagnostics for run '{self.run}'. {self._score_line()}"]
        for finding in self.findings:
            lines += [
                f"{finding.severity.upper():8} {finding.code}: {finding.title}",
                f"         {finding.explanation}",
                f"         fix: {finding.fix}",
            ]
        lines += [f"skipped  {skip.code}: {skip.reason}" for skip in self.skipped]
        return "\n".join(lines) + "\n"

    def write(self, json_path: str | Path, markdown_path: str | Path | None = None) -> None:
        Path(json_path).write_text(self.to_json(), encoding="utf-8")
        if markdown_path is not None:
            Path(markdown_path).write_text(self.to_markdown(), encoding="utf-8")


def _cell(value: object) -> str:
    return "—" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _normalise_history(history: pd.DataFrame) -> pd.DataFrame:
    frame = history.rename(columns=lambda name: KERAS_2_COLUMNS.get(str(name).strip(), name))
    if "loss" not in frame.columns:
        raise ValueError(f"history has no 'loss' column; got {list(frame.columns)}")
    if frame.empty:
        raise ValueError("history has no rows (no epoch was trained)")
    if "epoch" not in frame.columns:
        frame = frame.assign(epoch=np.arange(1, len(frame) + 1))
    return frame.sort_values("epoch", kind="stable").reset_index(drop=True)


def read_history(path: str | Path) -> pd.DataFrame:
    """Read our history.tsv or a Keras CSVLogger file (Keras 2 or 3 names; separator detected).

    CSVLogger counts epochs from 0, our training stage from 1: a history whose first epoch is 0
    is shifted to start at 1.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        header = handle.readline()
    separator = "\t" if "\t" in header else ";" if ";" in header and "," not in header else ","
    frame = _normalise_history(pd.read_csv(path, sep=separator))
    if frame["epoch"].min() == 0:
        frame["epoch"] = frame["epoch"] + 1
    return frame


def diagnose(
    history: pd.DataFrame,
    *,
    run: str,
    train_images: int,
    validation_images: int,
    batch_size: int,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    validation_shuffle: bool = False,
    batches: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    batchnorm: dict | None = None,
    train_label_counts: dict[str, int] | None = None,
    learning_rate: float | None = None,
    optimizer: str | None = None,
) -> Diagnostics:
    """Explain a run's learning curves; checks missing an input are listed in `skipped`."""
    for name, value, least in [
        ("train_images", train_images, 1),
        ("batch_size", batch_size, 1),
        ("validation_images", validation_images, 0),
        ("steps_per_epoch", steps_per_epoch, 1),
        ("validation_steps", validation_steps, 1),
    ]:
        if value is not None and (not isinstance(value, int | np.integer) or value < least):
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    settings = RunSettings(
        run,
        int(train_images),
        int(validation_images),
        int(batch_size),
        steps_per_epoch,
        validation_steps,
        bool(validation_shuffle),
        learning_rate,
        optimizer,
    )
    history = _normalise_history(history)
    noise = estimate_noise(history, settings, predictions)
    band = None
    if isinstance(noise, NoiseEstimate):
        band = max(
            (b for b in (noise.loss_expected, noise.loss_observed) if b is not None), default=None
        )
    results = [
        check_partial_epoch(history, settings),
        check_partial_validation(history, settings),
        check_sampling_noise(noise, settings),
        check_batchnorm(batchnorm, settings),
        check_unstable_optimization(batches, history, settings),
        check_overfitting(history, band, settings),
        check_class_imbalance(train_label_counts, predictions),
    ]
    if isinstance(noise, NoiseEstimate) and noise.loss_expected is None and noise.score:
        results.append(
            Skipped(
                SAMPLING_NOISE,
                "val_loss band: no per-image validation losses "
                "(predictions.tsv need the model); the band uses val_accuracy",
            )
        )
    findings = [result for result in results if isinstance(result, Finding)]
    results.append(check_stable(findings, noise))
    estimate = noise if isinstance(noise, NoiseEstimate) else None
    return Diagnostics(
        run=run,
        fluctuation_score=estimate.score if estimate else None,
        fluctuation_metric=f"val_{estimate.metric}" if estimate and estimate.metric else None,
        findings=tuple(result for result in results if isinstance(result, Finding)),
        skipped=tuple(result for result in results if isinstance(result, Skipped)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simtrain.diagnose",
        description="Explain why a validation curve fluctuates, from a Keras CSVLogger file or "
        "simtrain's history.tsv. Exits 0 whenever the diagnosis ran.",
    )
    parser.add_argument("history", type=Path, help="CSVLogger .csv or history.tsv")
    parser.add_argument("--train-images", type=int, required=True, help="training-set size")
    parser.add_argument("--validation-images", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--steps-per-epoch", type=int, help="omit for full epochs")
    parser.add_argument("--validation-steps", type=int, help="omit for full validation")
    parser.add_argument(
        "--validation-shuffle",
        action="store_true",
        help="validation data was reshuffled every epoch",
    )
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--batches", type=Path, help="simtrain batches.tsv (per-batch losses)")
    parser.add_argument("--predictions", type=Path, help="simtrain predictions.tsv")
    parser.add_argument("--run", help="run name used in the fixes (default: the file's stem)")
    parser.add_argument("--json", action="store_true", help="print diagnostics.json instead")
    args = parser.parse_args(argv)
    try:
        history = read_history(args.history)
        tables = {
            name: pd.read_csv(getattr(args, name), sep="\t") if getattr(args, name) else None
            for name in ("batches", "predictions")
        }
    except (OSError, ValueError, pd.errors.ParserError) as error:
        parser.exit(
            1,
            f"error: cannot read {error}\n" if isinstance(error, OSError) else f"error: {error}\n",
        )
    try:
        result = diagnose(
            history,
            run=args.run or args.history.stem,
            train_images=args.train_images,
            validation_images=args.validation_images,
            batch_size=args.batch_size,
            steps_per_epoch=args.steps_per_epoch,
            validation_steps=args.validation_steps,
            validation_shuffle=args.validation_shuffle,
            learning_rate=args.learning_rate,
            **tables,
        )
    except ValueError as error:
        parser.error(str(error))
    sys.stdout.write(result.to_json() if args.json else result.to_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
