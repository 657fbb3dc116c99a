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
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain import diagnostics_findings as checks
from simtrain.diagnostics_findings import Finding, RunSettings, Skipped, finite_column, plain_number
from simtrain.faults import failpoint
from simtrain.io import write_text

# Fewer epochs cannot separate fluctuation from trend (it takes two first differences at least).
MIN_EPOCHS_FOR_NOISE = 3
# Turns a median absolute deviation into a standard deviation for normally distributed noise.
MAD_TO_SD = 1.4826
# Observed noise above twice the expected is "beyond the band": the robust estimate from 10-20
# epochs is uncertain by about +-30 %, so 2x is some three standard errors away.
NOISE_BAND_LIMIT = 2.0
SAMPLING_NOISE = "VALIDATION_SAMPLING_NOISE"
# Findings that can make a validation curve jump. Not PARTIAL_VALIDATION (the band already uses
# the images actually scored) nor OVERFITTING (a trend, not a fluctuation).
FLUCTUATION_CAUSES = "PARTIAL_EPOCH BATCHNORM_STATISTICS UNSTABLE_OPTIMIZATION CLASS_IMBALANCE"
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
        """The metric of the fluctuation score: loss when it has a band, else accuracy."""
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
    if epochs < MIN_EPOCHS_FOR_NOISE:
        reason = f"{epochs} epoch(s) with a validation score, too few to tell noise from trend"
        if epochs == 0:
            reason = "no finite val_loss or val_accuracy: trained without validation data?"
        return Skipped(SAMPLING_NOISE, reason)
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
    noise: NoiseEstimate, settings: RunSettings, causes: list[str], unchecked: list[str]
) -> Finding | Skipped:
    """Observed vs expected noise; names the `causes` found (or the checks `unchecked`)."""
    if noise.score is None:
        return Skipped(
            SAMPLING_NOISE,
            "no expected noise: images scored per epoch unknown, or "
            "val_loss alone without per-image losses (predictions.tsv)",
        )
    m, beyond = noise.images_scored, noise.beyond_band
    evidence: dict = {
        "validation_images_scored_per_epoch": m,
        "epochs": noise.epochs,
        "band_limit": NOISE_BAND_LIMIT,
        "fluctuation_score": noise.score,
    }
    parts = []
    for metric in ("accuracy", "loss"):
        expected = getattr(noise, f"{metric}_expected")
        observed = getattr(noise, f"{metric}_observed")
        if noise.ratio(metric) is None:
            continue
        evidence |= {
            f"val_{metric}_expected_noise": expected,
            f"val_{metric}_observed_noise": observed,
            f"val_{metric}_noise_ratio": noise.ratio(metric),
        }
        if metric == "accuracy":
            source = f"a mean val_accuracy of {noise.accuracy_mean:.1%} (binomial)"
        else:
            source = f"per-image losses spread by {noise.loss_per_image_sd:.3g}"
        parts.append(
            f"with {source} the standard error of val_{metric} is ±{expected:.3g}, "
            f"observed ±{observed:.3g}"
        )
    if noise.ratio("loss") is None:
        parts.append("val_loss has no band without per-image losses (predictions.tsv)")
    verdict = " That is what a sample of this size produces: measurement noise."
    fix = (
        f"nothing must change; to narrow the band (it shrinks as 1/√images) set "
        f"{settings.key('validation_steps')}: null or simulate more images (images_per_class)"
    )
    if beyond:
        verdict = (
            " The curve moves more than the images scored explain, so the model itself "
            "jumps between epochs; "
        )
        if causes:
            verdict += f"see {', '.join(causes)} for why."
        else:
            verdict += "no check that ran explains why" + (
                f" ({', '.join(unchecked)} could not run)." if unchecked else "."
            )
        fix = (
            f"remove the causes named above; failing that, lower "
            f"{settings.key('learning_rate')} or raise {settings.key('batch_size')}"
        )
    return Finding(
        SAMPLING_NOISE,
        "warning" if beyond else "info",
        f"Validation curve fluctuates {'beyond' if beyond else 'within'} its sampling noise",
        evidence,
        f"Each epoch scored {m} validation images: {'; '.join(parts)}. Observed noise is the "
        f"spread of epoch-to-epoch changes with the trend removed (median absolute deviation "
        f"of first differences / √2).{verdict}",
        fix,
    )


def check_stable(findings: list[Finding], noise: NoiseEstimate | None) -> Finding | Skipped | None:
    if any(finding.severity != "info" for finding in findings):
        return None
    if noise is None or noise.score is None:
        return Skipped("STABLE", "no validation curve with a noise band to judge")
    return Finding(
        "STABLE",
        "info",
        "Learning curve is stable",
        {"fluctuation_score": noise.score, "epochs": noise.epochs},
        f"No check found a problem, and the validation curve moves by {noise.score:.2f}× the "
        f"noise that its {noise.images_scored} scored images explain: measurement noise.",
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
            "fluctuation_score": plain_number(self.fluctuation_score),
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
            f"Fluctuation score: {plain_number(self.fluctuation_score)} — "
            f"{self.fluctuation_metric} varies {self.fluctuation_score:.2g}× as much as the "
            f"validation images scored explain (≈1: measurement noise; ≫1: the model jumps)."
        )

    def to_markdown(self) -> str:
        lines = [f"# Diagnostics for run `{self.run}`", "", self._score_line(), ""]
        for item in self.findings:
            heading = f"## {item.severity.upper()} · `{item.code}` — {item.title}"
            lines += [heading, "", "| evidence | value |", "|---|---|"]
            lines += [f"| {key} | {_cell(value)} |" for key, value in item.evidence.items()]
            lines += ["", item.explanation, "", f"**Fix:** {item.fix}", ""]
        if self.skipped:
            lines += ["## Skipped checks", ""]
            lines += [f"- `{skip.code}`: {skip.reason}" for skip in self.skipped] + [""]
        return "\n".join(lines)

    def to_text(self) -> str:
        """Plain text for a terminal: one block per finding, then the skipped checks."""
        lines = [f"Diagnostics for run '{self.run}'", _wrap(self._score_line(), "")]
        for item in self.findings:
            lines += [
                f"\n{item.severity.upper()} {item.code}: {item.title}",
                _wrap(item.explanation),
                _wrap(f"fix: {item.fix}"),
            ]
        lines += [""] + [_wrap(f"skipped {s.code}: {s.reason}", "") for s in self.skipped]
        return "\n".join(lines) + "\n"

    def write(self, json_path: str | Path, markdown_path: str | Path | None = None) -> None:
        write_text(json_path, self.to_json())
        failpoint("diagnose.between_files")
        if markdown_path is not None:
            write_text(markdown_path, self.to_markdown())


def _wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(text, 100, initial_indent=indent, subsequent_indent=indent + "  ")


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
    settings = RunSettings.checked(
        run=run,
        train_images=train_images,
        validation_images=validation_images,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        validation_shuffle=validation_shuffle,
        learning_rate=learning_rate,
        optimizer=optimizer,
    )
    history = _normalise_history(history)
    estimate = estimate_noise(history, settings, predictions)
    noise = estimate if isinstance(estimate, NoiseEstimate) else None
    band_skip = band = None
    if noise is not None:
        # Overfitting must rise above both the sampling noise and the fluctuation really seen.
        band = max(
            (b for b in (noise.loss_expected, noise.loss_observed) if b is not None), default=None
        )
        if noise.loss_expected is None and noise.score is not None:
            band_skip = Skipped(
                SAMPLING_NOISE,
                "val_loss band: no per-image validation losses "
                "(predictions.tsv need the model); the band uses val_accuracy",
            )
    results = {
        "PARTIAL_EPOCH": checks.check_partial_epoch(history, settings),
        "PARTIAL_VALIDATION": checks.check_partial_validation(history, settings),
        SAMPLING_NOISE: estimate,  # replaced below, once the causes it names have been checked
        "band": band_skip,
        "BATCHNORM_STATISTICS": checks.check_batchnorm(batchnorm, settings),
        "UNSTABLE_OPTIMIZATION": checks.check_unstable_optimization(batches, history, settings),
        "OVERFITTING": checks.check_overfitting(history, band, settings),
        "CLASS_IMBALANCE": checks.check_class_imbalance(train_label_counts, predictions),
    }
    if noise is not None:
        causes = [results[code] for code in FLUCTUATION_CAUSES.split()]
        named = [r.code for r in causes if isinstance(r, Finding) and r.severity != "info"]
        unchecked = [r.code for r in causes if isinstance(r, Skipped)]
        results[SAMPLING_NOISE] = check_sampling_noise(noise, settings, named, unchecked)
    results["STABLE"] = check_stable([r for r in results.values() if isinstance(r, Finding)], noise)
    return Diagnostics(
        run=run,
        fluctuation_score=noise.score if noise else None,
        fluctuation_metric=f"val_{noise.metric}" if noise and noise.metric else None,
        findings=tuple(r for r in results.values() if isinstance(r, Finding)),
        skipped=tuple(r for r in results.values() if isinstance(r, Skipped)),
    )


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


if __name__ == "__main__":
    sys.exit(main())
