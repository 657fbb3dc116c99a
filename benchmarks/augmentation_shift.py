"""How to remove the augmentation-induced train/validation shift: the options side by side.

The default config's small CNN (shear 0.2°, zoom 0.2, flips) is trained once per warp
interpolation on the same packed data, then scored on every validation image with

- its stored BatchNorm moving statistics (what its validation curve used),
- statistics recomputed over augmented training batches (what its weights were trained on),
- statistics recomputed over un-augmented training batches ("precise BN" after training),

and its validation curve is summarised (final, lowest and mean epoch-to-epoch change of
val_accuracy). Options compared: bilinear interpolation (the legacy ImageDataGenerator's),
nearest interpolation (copies pixels), bilinear + precise BN on un-augmented data after
training (the third score of the bilinear run), and no augmentation at all.

    uv run python benchmarks/augmentation_shift.py --packed results/packed
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_results_argument, append_result, format_table, positive_int  # noqa: E402

SETTINGS = {
    "model": "small_cnn",
    "epochs": 12,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 0.002,
    "steps_per_epoch": None,
    "validation_steps": None,
    "validation_shuffle": False,
    "standardize": True,
    "train_images": None,
}
ORIGINAL = {"shear": 0.2, "zoom": 0.2, "horizontal_flip": True}
OPTIONS = {
    "bilinear (legacy)": {**ORIGINAL, "interpolation": "bilinear"},
    "nearest": {**ORIGINAL, "interpolation": "nearest"},
    "no augmentation": {},
}


def train_and_score(packed: Path, augmentation: dict, seed: int, epochs: int) -> dict:
    from simtrain.diagnosis.model_evidence import batchnorm_evidence
    from simtrain.training.fit import train_run

    settings = {**SETTINGS, "epochs": epochs, "augmentation": augmentation, "seed": seed}
    with tempfile.TemporaryDirectory() as out:
        train_run(
            run="option",
            settings=settings,
            train_dir=packed / "train",
            validation_dir=packed / "validation",
            out_dir=out,
            resolved_config={},
            threads=2,
        )
        history = pd.read_csv(Path(out) / "history.tsv", sep="\t")
        evidence = batchnorm_evidence(
            Path(out) / "model.keras",
            packed / "train",
            packed / "validation",
            batch_size=SETTINGS["batch_size"],
            seed=seed,
        )
    curve = history["val_accuracy"].to_numpy()
    return {
        "final_val_accuracy": float(curve[-1]),
        "lowest_last_half": float(curve[len(curve) // 2 :].min()),
        "mean_abs_change": float(np.mean(np.abs(np.diff(curve)))),
        "moving": evidence["val_accuracy_moving"],
        "recomputed_augmented": evidence["val_accuracy_recomputed"],
        "recomputed_plain": evidence["val_accuracy_recomputed_plain"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packed", type=Path, required=True, help="results/packed of a run")
    parser.add_argument("--seeds", type=positive_int, default=1, help="training seeds per option")
    parser.add_argument("--epochs", type=positive_int, default=SETTINGS["epochs"])
    add_results_argument(parser)
    args = parser.parse_args(argv)
    rows, results = [], {}
    for name, augmentation in OPTIONS.items():
        scores = [
            train_and_score(args.packed, augmentation, s, args.epochs) for s in range(args.seeds)
        ]
        mean = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
        results[name] = mean
        rows.append([name, *(f"{mean[key]:.3f}" for key in mean)])
        if name.startswith("bilinear"):
            precise = {**mean, "moving": mean["recomputed_plain"]}
            rows.append(
                [
                    "bilinear + precise BN (plain)",
                    "–",
                    "–",
                    "–",
                    f"{precise['moving']:.3f}",
                    "–",
                    "–",
                ]
            )
    headers = ["option", "final val acc (curve)", "lowest, last half", "mean |Δ| per epoch"]
    headers += ["stored BN stats", "recomputed, augmented", "recomputed, plain"]
    print(format_table(headers, rows))
    append_result(
        args.results,
        benchmark="augmentation_shift",
        parameters={"packed": str(args.packed), "seeds": args.seeds, "epochs": args.epochs},
        results=results,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
