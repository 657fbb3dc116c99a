"""Explain why a validation curve fluctuates: `diagnose(history, ...)` runs every check.

The centre is the noise model of `noise`: what validation sampling and ordinary training
movement make a curve do, and tests (one epoch beyond both neighbours; movement throughout)
against it. `attribution` splits the curve's movement by source and lets the checks with
evidence at the epochs concerned claim the part beyond noise; the main cause is reported in
diagnostics.json's `fluctuation`, and UNEXPLAINED_FLUCTUATION when no check claims it.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from simtrain.common.failpoints import failpoint
from simtrain.common.files import write_text
from simtrain.diagnosis.attribution import BATCHNORM_CAUSES, UNSTABLE, decompose
from simtrain.diagnosis.batchnorm import check_augmentation_shift, check_batchnorm
from simtrain.diagnosis.coverage import check_partial_epoch, check_partial_validation
from simtrain.diagnosis.findings import Finding, RunSettings, Skipped, plain_number
from simtrain.diagnosis.history import normalise_history
from simtrain.diagnosis.imbalance import check_class_imbalance, check_prediction_collapse
from simtrain.diagnosis.noise import (
    SAMPLING_NOISE,
    NoiseEstimate,
    estimate_noise,
)
from simtrain.diagnosis.optimization import check_unstable_optimization
from simtrain.diagnosis.overfitting import check_overfitting
from simtrain.diagnosis.undertraining import check_under_trained
from simtrain.diagnosis.validation_record import ValidationRecord
from simtrain.diagnosis.verdict import check_sampling_noise, check_stable, check_unexplained


@dataclass(frozen=True)
class Diagnostics:
    """All findings for one run, in a fixed order, serialisable to diagnostics.json/.md."""

    run: str
    fluctuation_score: float | None
    fluctuation_metric: str | None  # "val_loss" | "val_accuracy" | None
    findings: tuple[Finding, ...]
    skipped: tuple[Skipped, ...]
    # Where the validation curve's movement comes from (attribution.Decomposition.to_dict()).
    fluctuation: dict | None = None

    @property
    def codes(self) -> list[str]:
        return [finding.code for finding in self.findings]

    def with_findings(self, findings: list[Finding]) -> Diagnostics:
        """These diagnostics with more findings (checks that need other inputs: SIM_TO_REAL_GAP);
        a WARNING among them ends STABLE."""
        if not findings:
            return self
        kept = self.findings
        if any(f.severity != "info" for f in findings):
            kept = tuple(f for f in kept if f.code != "STABLE")
        return replace(self, findings=kept + tuple(findings))

    def to_dict(self) -> dict:
        return {
            "run": self.run,
            "fluctuation_score": plain_number(self.fluctuation_score),
            "fluctuation_metric": self.fluctuation_metric,
            "findings": [vars(finding).copy() for finding in self.findings],
            "skipped": [vars(skip).copy() for skip in self.skipped],
            "fluctuation": self.fluctuation,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def _score_line(self) -> str:
        if self.fluctuation_score is None:
            return "Fluctuation score: not available (too few epochs or no standard error)."
        return (
            f"Fluctuation score: {plain_number(self.fluctuation_score)} — "
            f"{self.fluctuation_metric} moves {self.fluctuation_score:.2g}× what validation "
            f"sampling and ordinary training movement explain (≈1: noise; ≫1: something else "
            f"moves it; the verdict comes from the tests' p-values and the practical floor)."
        )

    def _fluctuation_lines(self) -> list[str]:
        """The decomposition table of diagnostics.md."""
        f = self.fluctuation
        if not f:
            return []
        verdict = (
            f"beyond its noise; cause: `{f['cause']}`" if f["beyond_noise"] else "within its noise"
        )
        lines = ["## Where the movement comes from", "", f"The validation curve moves {verdict}."]
        lines += ["", "| part | variance per epoch | share | claimed by |", "|---|---|---|---|"]
        variance, share = f["variance_per_epoch"], f["share_of_total"]
        claims = ", ".join(f"`{c}`" for c in f["claimed_by"]) or "—"
        for part, name in (
            ("sampling", "validation sampling"),
            ("training", "ordinary training movement"),
            ("rest", "the rest"),
            ("unexplained", "of which unexplained"),
        ):
            who = {
                "sampling": f"`{f['sampling_claimed_by']}`" if f["sampling_claimed_by"] else "—",
                "rest": claims,
            }.get(part, "—")
            lines.append(f"| {name} | {_cell(variance[part])} | {_cell(share[part])} | {who} |")
        if f["glitch_epoch"] is not None:
            lines += [
                "",
                f"Epoch {f['glitch_epoch']} lies beyond both neighbours: `{f['glitch_cause']}`.",
            ]
        lines += ["", f"Model evidence: {f['model_evidence']}.", ""]
        return lines

    def to_markdown(self) -> str:
        lines = [f"# Diagnostics for run `{self.run}`", "", self._score_line(), ""]
        lines += self._fluctuation_lines()
        for item in self.findings:
            heading = f"## {item.severity.upper()} · `{item.code}` — {item.title}"
            lines += [heading, "", "| evidence | value |", "|---|---|"]
            lines += [f"| {key} | {_cell(value)} |" for key, value in item.evidence.items()]
            fix = f"**Fix:** {item.fix}"
            if item.change is not None:
                fix += f"\nVerifiable as the config change `{json.dumps(item.change)}`."
            lines += ["", item.explanation, "", fix, ""]
        lines += ["## Skipped checks", ""]
        lines += [f"- `{skip.code}`: {skip.reason}" for skip in self.skipped] or ["- none"]
        lines += [""]
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


def _class_count(
    train_label_counts: dict[str, int] | None, predictions: pd.DataFrame | None
) -> int | None:
    if train_label_counts:
        return len(train_label_counts)
    if predictions is not None and "true" in predictions.columns:
        return int(predictions["true"].nunique())
    return None


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
    validation_record: ValidationRecord | None = None,
    augmentation: bool | None = None,
    epochs: int | None = None,
    epoch_evidence: dict | None = None,
    replicate_curves: tuple = (),
    lr_schedule: str | None = None,
    train_subset: bool | None = None,
) -> Diagnostics:
    """Explain a run's learning curves; checks missing an input are listed in `skipped`.

    `validation_record` (per epoch and image: right/wrong/unscored and loss) makes the noise
    model paired; without it (a CSVLogger file) everything runs with weaker statements.
    `augmentation` and `epochs` (None: unknown) keep fixes from advising what the run has.
    `epoch_evidence` (`model_evidence.epoch_evidence`) lets BatchNorm claim the epochs where the
    curve jumps; `replicate_curves` (the val_accuracy per epoch of the run's other seeds) join
    the estimate of ordinary training movement. `lr_schedule` (the schedule's kind, "none" for a
    constant rate) and `train_subset` (trained on part of the training images) shape the fixes.
    """
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
        augmentation=augmentation,
        epochs=epochs,
        lr_schedule=lr_schedule,
        train_subset=train_subset,
    )
    history = normalise_history(history)
    estimate = estimate_noise(
        history, settings, predictions, validation_record, replicate_curves=replicate_curves
    )
    noise = estimate if isinstance(estimate, NoiseEstimate) else None
    band_skip = None
    if noise is not None and noise.loss_se is None:
        band_skip = Skipped(
            SAMPLING_NOISE,
            "val_loss standard error: no per-image validation losses (validation_record.npz "
            "or predictions.tsv); overfitting is judged against the curve's own spread",
        )
    results = {
        "PARTIAL_EPOCH": check_partial_epoch(history, settings),
        "PARTIAL_VALIDATION": check_partial_validation(history, settings),
        SAMPLING_NOISE: estimate,  # replaced below, once the causes it names have been checked
        "band": band_skip,
        "BATCHNORM_STATISTICS": check_batchnorm(batchnorm, settings),
        # The lead's check (batchnorm.py): augmentation-induced input shift vs BatchNorm lag.
        "AUGMENTATION_SHIFT": check_augmentation_shift(batchnorm, settings),
        "UNSTABLE_OPTIMIZATION": check_unstable_optimization(batches, history, settings),
        "OVERFITTING": check_overfitting(
            history,
            noise.loss_band if noise else None,
            settings,
            noise.expected if noise else None,
            validation_record,
        ),
        "CLASS_IMBALANCE": check_class_imbalance(train_label_counts, predictions),
        "PREDICTION_COLLAPSE": check_prediction_collapse(predictions),
        "UNDER_TRAINED": check_under_trained(
            history, settings, _class_count(train_label_counts, predictions)
        ),
    }
    unchecked = sorted({r.code for r in results.values() if isinstance(r, Skipped)})
    decomposition = None
    if noise is not None:
        decomposition = decompose(noise, results, epoch_evidence)
        if decomposition.cause in BATCHNORM_CAUSES or decomposition.glitch_cause in (
            BATCHNORM_CAUSES
        ):
            # Per-epoch evidence can name BatchNorm where the final model alone did not.
            bn = results["BATCHNORM_STATISTICS"]
            if isinstance(bn, Finding) and bn.severity == "info":
                results["BATCHNORM_STATISTICS"] = check_batchnorm(
                    batchnorm, settings, per_epoch_claim=True
                )
        unstable = results[UNSTABLE]
        if (
            UNSTABLE in decomposition.claims
            and isinstance(unstable, Finding)
            and unstable.severity == "info"  # spikes in a few epochs claimed the movement
        ):
            results[UNSTABLE] = check_unstable_optimization(
                batches, history, settings, claims_movement=True
            )
        results[SAMPLING_NOISE] = check_sampling_noise(
            noise, decomposition, settings, [code for code in unchecked if code != SAMPLING_NOISE]
        )
        results["UNEXPLAINED_FLUCTUATION"] = check_unexplained(noise, decomposition, settings)
    findings = [r for r in results.values() if isinstance(r, Finding)]
    results["STABLE"] = check_stable(findings, noise, unchecked)
    return Diagnostics(
        run=run,
        fluctuation_score=noise.score if noise else None,
        fluctuation_metric=f"val_{noise.metric}" if noise and noise.score is not None else None,
        findings=tuple(r for r in results.values() if isinstance(r, Finding)),
        skipped=tuple(r for r in results.values() if isinstance(r, Skipped)),
        fluctuation=decomposition.to_dict() if decomposition is not None else None,
    )
