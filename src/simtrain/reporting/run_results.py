"""Reading one finished replicate's folder (results/runs/{run}/seed-{k}/) into a `RunResult`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simtrain.training.tables import read_predictions


@dataclass(frozen=True, eq=False)
class RunResult:
    """Everything one run wrote; optional artefacts are None when their file is absent."""

    run: str
    run_dir: Path
    metrics: dict
    history: pd.DataFrame | None
    timing: pd.DataFrame | None
    batches: pd.DataFrame | None
    predictions: pd.DataFrame | None
    diagnostics: dict | None
    # The final weights with precise BatchNorm statistics (deep runs with BatchNorm).
    robust_predictions: pd.DataFrame | None = None

    @property
    def replicate(self) -> int:
        """Which seed replicate of its run (0 for a run trained once)."""
        if "replicate" in self.metrics:
            return int(self.metrics["replicate"])
        match = re.fullmatch(r"seed-(\d+)", self.run_dir.name)
        return int(match.group(1)) if match else 0

    @property
    def model(self) -> str:
        return str(self.metrics.get("model", ""))

    @property
    def classes(self) -> list[str]:
        if self.predictions is None:
            return []
        # p_<class> columns list every class, even one that never occurs in validation.
        named = [c[2:] for c in self.predictions.columns if c.startswith("p_")]
        return named or sorted(set(self.predictions["true"]) | set(self.predictions["predicted"]))

    @property
    def correct(self) -> np.ndarray | None:
        """Right/wrong per validation image: the last epoch, stored statistics."""
        if self.predictions is None:
            return None
        return (self.predictions["true"] == self.predictions["predicted"]).to_numpy(dtype=bool)

    @property
    def robust_correct(self) -> np.ndarray | None:
        """Right/wrong per image with precise BatchNorm statistics; the final model's when
        the run has none (no BatchNorm, or the baseline)."""
        frame = self.robust_predictions
        if frame is None:
            return self.correct
        return (frame["true"] == frame["predicted"]).to_numpy(dtype=bool)


def _read_table(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, sep="\t") if path.is_file() else None


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _read_predictions(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    predictions = read_predictions(path)
    missing = {"index", "true", "predicted"} - set(predictions.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return predictions.astype({"true": str, "predicted": str})


def load_run(run_dir: str | Path) -> RunResult:
    """Read a replicate's folder; metrics.json is required, every other file is optional."""
    run_dir = Path(run_dir)
    metrics = _read_json(run_dir / "metrics.json")
    if metrics is None:
        raise ValueError(f"{run_dir / 'metrics.json'}: missing; every run must write metrics.json")
    predictions = _read_predictions(run_dir / "predictions.tsv")
    robust = _read_predictions(run_dir / "predictions_precise_bn.tsv")
    if (
        robust is not None
        and predictions is not None
        and not robust["index"].equals(predictions["index"])
    ):
        raise ValueError(f"{run_dir}: predictions_precise_bn.tsv lists other images")
    return RunResult(
        run=str(metrics.get("run", _run_name(run_dir))),
        run_dir=run_dir,
        metrics=metrics,
        history=_read_table(run_dir / "history.tsv"),
        timing=_read_table(run_dir / "timing.tsv"),
        batches=_read_table(run_dir / "batches.tsv"),
        predictions=predictions,
        diagnostics=_read_json(run_dir / "diagnostics.json"),
        robust_predictions=robust,
    )


def _run_name(run_dir: Path) -> str:
    """results/runs/{run}/seed-{k} -> run; a folder not named seed-{k} is the run itself."""
    return run_dir.parent.name if re.fullmatch(r"seed-\d+", run_dir.name) else run_dir.name
