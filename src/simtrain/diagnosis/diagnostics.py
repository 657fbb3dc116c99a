"""Explain why a validation curve fluctuates: `diagnose(history, ...)` runs every check.

The centre is the sampling-noise band: the epoch-to-epoch noise a validation score must show
just because it averages over m images (binomial for accuracy, per-image loss spread for loss),
compared with the noise the curve really shows. The fluctuation score is their ratio: ~1 means
"as noisy as the validation-set size explains", >>1 means the model itself jumps around, and
the other checks say why.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simtrain.common.failpoints import failpoint
from simtrain.common.files import write_text
from simtrain.diagnosis.batchnorm import check_batchnorm
from simtrain.diagnosis.coverage import check_partial_epoch, check_partial_validation
from simtrain.diagnosis.findings import Finding, RunSettings, Skipped, plain_number
from simtrain.diagnosis.history import normalise_history
from simtrain.diagnosis.imbalance import check_class_imbalance
from simtrain.diagnosis.noise import (
    FLUCTUATION_CAUSES,
    SAMPLING_NOISE,
    NoiseEstimate,
    check_sampling_noise,
    check_stable,
    estimate_noise,
)
from simtrain.diagnosis.optimization import check_unstable_optimization
from simtrain.diagnosis.overfitting import check_overfitting


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
    history = normalise_history(history)
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
        "PARTIAL_EPOCH": check_partial_epoch(history, settings),
        "PARTIAL_VALIDATION": check_partial_validation(history, settings),
        SAMPLING_NOISE: estimate,  # replaced below, once the causes it names have been checked
        "band": band_skip,
        "BATCHNORM_STATISTICS": check_batchnorm(batchnorm, settings),
        "UNSTABLE_OPTIMIZATION": check_unstable_optimization(batches, history, settings),
        "OVERFITTING": check_overfitting(history, band, settings),
        "CLASS_IMBALANCE": check_class_imbalance(train_label_counts, predictions),
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
