"""How often the diagnostics are right, measured on curves whose cause is known.

    uv run python benchmarks/diagnosis_accuracy.py synthetic [--repetitions 200]

`synthetic` draws learning curves from a stated statistical model of a run and feeds
`diagnose()` exactly what the workflow gives it (history + validation record + final
predictions) or what the command line gives it (a CSVLogger history alone):

- N validation images in 5 balanced classes; image i has a fixed difficulty mu_i ~ N(0, 1).
- The model's skill rises as g(t) = -0.8 + 1.8 (1 - exp(-t / tau)) with tau = epochs / 5, so
  every run has levelled off by its last epoch (a converged run).
- Each epoch the model changes a little: image i's margin is mu_i + g(t) + 0.3 e_it with
  e_it ~ N(0, 1) independent; the image is right when its margin is positive, and its loss is
  log(1 + exp(-3 margin)).
- Validation: fixed (the same 2 000 images every epoch) or shuffled partial (a different
  random 1 152 of 8 000 each epoch: 9 steps of 128, the original case).
- Scenarios: clean; a one-epoch glitch that moves the margins of one epoch down until exactly
  k standard errors of accuracy are lost (k = 3, 6, 10; the standard error the diagnosis uses:
  binomial, times √((N−m)/(N−1)) when shuffled), at a random interior epoch of the second half
  of the run ("glitch 6 early": of the first half, where the curve itself still rises by more
  than that per epoch, so that no test of an epoch against its neighbours can see it); a slow drift
  in which the skill falls linearly over the second half so that accuracy ends 10 standard
  errors lower.
- Training history: loss 0.1 + 1.5 exp(-t/tau), accuracy 0.2 + 0.78 (1 - exp(-t/tau)).

It prints markdown tables: per scenario, validation, input and number of epochs, how often
each WARNING/CRITICAL code fires (PARTIAL_VALIDATION, true by construction for the shuffled
partial set, is shown but is not a false alarm), and how often a glitch is detected and its
epoch named. Targets: clean curves raise each WARNING/CRITICAL code in <= 5 % of runs; a
one-epoch glitch of >= 6 SE is detected in >= 90 %.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simtrain.diagnosis.diagnostics import diagnose
from simtrain.diagnosis.validation_record import ValidationRecord

CLASSES = 5
JITTER = 0.3
LOSS_SCALE = 3.0
EPOCH_COUNTS = (3, 5, 10, 20, 50)
GLITCH_SIZES = (3, 6, 10)
DRIFT_SIZE = 10  # standard errors lost by the end of a drifting run


@dataclass(frozen=True)
class Validation:
    name: str
    images: int  # N
    scored: int  # m per epoch
    batch_size: int
    validation_steps: int | None

    @property
    def shuffled(self) -> bool:
        return self.scored < self.images

    @property
    def factor(self) -> float:
        return math.sqrt((self.images - self.scored) / (self.images - 1)) if self.shuffled else 1.0


FIXED = Validation("fixed 2000", 2_000, 2_000, 32, None)
SHUFFLED = Validation("shuffled 1152 of 8000", 8_000, 1_152, 128, 9)


def simulate_run(
    rng: np.random.Generator, validation: Validation, epochs: int, scenario: str
) -> dict:
    """One run under the model of the module docstring: history, record and predictions."""
    t = np.arange(1, epochs + 1)
    tau = epochs / 5
    g = -0.8 + 1.8 * (1 - np.exp(-t / tau))
    difficulty = rng.standard_normal(validation.images)
    margins = difficulty + g[:, None] + JITTER * rng.standard_normal((epochs, validation.images))
    scored = np.ones((epochs, validation.images), dtype=bool)
    if validation.shuffled:
        scored[:] = False
        for epoch in range(epochs):
            chosen = rng.choice(validation.images, validation.scored, replace=False)
            scored[epoch, chosen] = True
    glitch_epoch = None
    if scenario.startswith("glitch") or scenario == "drift":
        size = DRIFT_SIZE if scenario == "drift" else int(scenario.split()[1])
        if scenario == "drift":
            half = epochs // 2
            for epoch in range(half, epochs):
                lost = size * (epoch - half + 1) / (epochs - half)
                margins[epoch] -= _shift_for(margins[epoch][scored[epoch]], lost, validation)
        else:
            # Interior, 0-based: second half of the run, or the first half ("early").
            middle = max(1, epochs // 2)
            low, high = (1, max(2, middle)) if scenario.endswith("early") else (middle, epochs - 1)
            glitch_epoch = int(rng.integers(low, high))
            row = margins[glitch_epoch]
            row -= _shift_for(row[scored[glitch_epoch]], size, validation)
    correct = np.where(scored, (margins > 0).astype(np.int8), np.int8(-1)).astype(np.int8)
    loss = np.where(scored, np.logaddexp(0.0, -LOSS_SCALE * margins), np.nan).astype(np.float32)
    record = ValidationRecord(correct=correct, loss=loss)
    history = pd.DataFrame(
        {
            "epoch": t,
            "loss": 0.1 + 1.5 * np.exp(-t / tau),
            "accuracy": 0.2 + 0.78 * (1 - np.exp(-t / tau)),
            "val_loss": record.mean_loss(),
            "val_accuracy": record.accuracy(),
        }
    )
    true = np.arange(validation.images) % CLASSES
    final = margins[-1] > 0
    predictions = pd.DataFrame(
        {
            "index": np.arange(validation.images),
            "true": true,
            "predicted": np.where(final, true, (true + 1) % CLASSES),
            "loss": np.logaddexp(0.0, -LOSS_SCALE * margins[-1]),
        }
    )
    return {
        "history": history,
        "record": record,
        "predictions": predictions,
        "glitch_epoch": None if glitch_epoch is None else glitch_epoch + 1,
    }


def _shift_for(margins: np.ndarray, standard_errors: float, validation: Validation) -> float:
    """The downward shift of all margins that loses `standard_errors` SE of accuracy."""
    m = margins.size
    p = float((margins > 0).mean())
    lost = int(round(standard_errors * validation.factor * math.sqrt(p * (1 - p) / m) * m))
    positive = np.sort(margins[margins > 0])
    if lost <= 0 or positive.size == 0:
        return 0.0
    return float(positive[min(lost, positive.size) - 1]) + 1e-9


def diagnose_run(run: dict, validation: Validation, with_record: bool):
    settings = dict(
        run="synthetic",
        train_images=10_000,
        validation_images=validation.images,
        batch_size=validation.batch_size,
        validation_steps=validation.validation_steps,
        validation_shuffle=validation.shuffled,
        epochs=len(run["history"]),
    )
    if with_record:
        extra = dict(
            validation_record=run["record"],
            predictions=run["predictions"],
            train_label_counts={str(k): 2_000 for k in range(CLASSES)},
        )
        return diagnose(run["history"], **settings, **extra)
    return diagnose(run["history"], **settings)


def synthetic_rates(
    repetitions: int,
    epoch_counts: tuple[int, ...] = EPOCH_COUNTS,
    scenarios: tuple[str, ...] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per scenario × validation × input × epochs: how often each code fires."""
    glitches = (*(f"glitch {k}" for k in GLITCH_SIZES), "glitch 6 early")
    scenarios = scenarios or ("clean", *glitches, "drift")
    rng = np.random.default_rng(seed)
    rows = []
    for scenario in scenarios:
        for validation in (FIXED, SHUFFLED):
            for epochs in epoch_counts:
                fired = {True: Counter(), False: Counter()}
                named = Counter()
                for _ in range(repetitions):
                    run = simulate_run(rng, validation, epochs, scenario)
                    for with_record in (True, False):
                        result = diagnose_run(run, validation, with_record)
                        alarms = {f.code for f in result.findings if f.severity != "info"}
                        fired[with_record].update(alarms)
                        fired[with_record]["any"] += bool(alarms - {"PARTIAL_VALIDATION"})
                        noise = [
                            f for f in result.findings if f.code == "VALIDATION_SAMPLING_NOISE"
                        ]
                        hit = noise and noise[0].evidence.get("glitch_epoch") == run["glitch_epoch"]
                        named[with_record] += bool(
                            hit and noise[0].severity == "warning" and run["glitch_epoch"]
                        )
                for with_record in (True, False):
                    row = {
                        "scenario": scenario,
                        "validation": validation.name,
                        "input": "history + record" if with_record else "history only (CLI)",
                        "epochs": epochs,
                        "runs": repetitions,
                        "any warning": fired[with_record]["any"] / repetitions,
                        "epoch named": named[with_record] / repetitions,
                    }
                    for code, count in fired[with_record].items():
                        if code != "any":
                            row[code] = count / repetitions
                    rows.append(row)
    table = pd.DataFrame(rows).fillna(0.0)
    fixed = [c for c in table.columns if not (c.isupper() or "_" in c)]
    return table[fixed + sorted(set(table.columns) - set(fixed))]


def markdown(table: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        return f"{value:.0%}" if isinstance(value, float) else str(value)

    header = "| " + " | ".join(table.columns) + " |"
    lines = [header, "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def run_synthetic(arguments: argparse.Namespace) -> None:
    scenarios = tuple(arguments.scenarios) if arguments.scenarios else None
    table = synthetic_rates(
        arguments.repetitions, tuple(arguments.epochs), scenarios, seed=arguments.seed
    )
    codes = [c for c in table.columns if c.isupper() or "_" in c]
    clean = table[table["scenario"].isin(["clean", "drift"])]
    glitch = table[table["scenario"].str.startswith("glitch")]
    print(f"### Clean curves and slow drifts ({arguments.repetitions} runs per row)\n")
    print(markdown(clean[["scenario", "validation", "input", "epochs", "any warning", *codes]]))
    print(f"\n### One-epoch glitches ({arguments.repetitions} runs per row)\n")
    detected = glitch.assign(detected=glitch.get("VALIDATION_SAMPLING_NOISE", 0.0))
    print(
        markdown(detected[["scenario", "validation", "input", "epochs", "detected", "epoch named"]])
    )


def run_real(arguments: argparse.Namespace) -> None:
    # Imported here: the synthetic part needs no deep-learning framework.
    from diagnosis_real_runs import SCENARIOS, cause_by_finding, real_runs

    names = arguments.scenarios or [s.name for s in SCENARIOS]
    runs = real_runs(arguments.seeds, names)
    table = cause_by_finding(runs)
    print(f"### Real tiny runs ({arguments.seeds} seeds per scenario)\n")
    print(markdown(table))
    print(f"\nmedian seconds per run (train + diagnose): {runs['seconds'].median():.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    synthetic = commands.add_parser("synthetic", help="curves from the stated statistical model")
    synthetic.add_argument("--repetitions", type=int, default=200, help="runs per table row")
    synthetic.add_argument(
        "--epochs", type=int, nargs="+", default=list(EPOCH_COUNTS), help="epoch counts to try"
    )
    synthetic.add_argument("--seed", type=int, default=0, help="random seed of the whole table")
    synthetic.add_argument(
        "--scenarios",
        nargs="+",
        help="subset of: clean, 'glitch K' (K standard errors), 'glitch 6 early', drift",
    )
    synthetic.set_defaults(handler=run_synthetic)
    real = commands.add_parser("real", help="tiny real training runs, one injected cause each")
    real.add_argument("--seeds", type=int, default=3, help="training seeds per scenario")
    real.add_argument("--scenarios", nargs="+", help="scenario names (default: all)")
    real.set_defaults(handler=run_real)
    arguments = parser.parse_args(argv)
    arguments.handler(arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
