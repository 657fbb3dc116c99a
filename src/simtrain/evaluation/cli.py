"""`simtrain-predict`: apply a trained run's model to a folder of unlabelled images."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from simtrain.data.images import ASPECTS, Conversion
from simtrain.evaluation.run_model import BATCH_SIZE, MODEL_FILES

# What runs trained before bit_depth and ingest existed were converted with.
DEFAULT_CONVERSION = {"bit_depth": 8, "aspect": "crop", "min_size": 32}


def run_conversion(run_dir: Path) -> dict:
    """How the run's training images were made: image_size, bit_depth, ingest settings."""
    path = run_dir / "config.resolved.yaml"
    if not path.is_file():
        raise ValueError(f"{path}: missing; is {run_dir} a trained run's seed folder?")
    config = yaml.safe_load(path.read_text())
    ingest = config.get("ingest") or {}
    return {
        "size": int(config["image_size"]),
        "bit_depth": int(config.get("bit_depth", DEFAULT_CONVERSION["bit_depth"])),
        "aspect": ingest.get("aspect", DEFAULT_CONVERSION["aspect"]),
        "min_size": int(ingest.get("min_size", DEFAULT_CONVERSION["min_size"])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="simtrain-predict",
        description="Predict the class of every image in a folder (PNG, TIFF, JPEG; sub-folders "
        "included) with a trained run's model; images are converted as the run's training "
        "images were (its config.resolved.yaml).",
    )
    parser.add_argument(
        "run_dir", type=Path, help="a replicate's folder, results/runs/<run>/seed-<k>"
    )
    parser.add_argument("folder", type=Path, help="folder of images to classify")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("predictions.tsv"),
        help="table to write: file, predicted, p_<class> per class (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        choices=list(MODEL_FILES),
        default="final",
        help="final (model.keras), best (best.keras: lowest val_loss) or precise_bn "
        "(precise_bn.keras: BatchNorm statistics recomputed); the baseline has final only",
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="images per batch")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads that read and convert the images",
    )
    parser.add_argument(
        "--aspect", choices=ASPECTS, help="override the run's ingest.aspect (crop or pad)"
    )
    parser.add_argument(
        "--min-size", type=int, help="override the run's ingest.min_size (pixels, shorter side)"
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.threads < 1:
        parser.error("--batch-size and --threads must be >= 1")
    # Imported after parsing: Keras takes seconds to load, --help should not.
    from simtrain.evaluation.predict import predict_folder
    from simtrain.evaluation.run_model import load_run_model

    try:
        settings = run_conversion(args.run_dir)
        if args.aspect is not None:
            settings["aspect"] = args.aspect
        if args.min_size is not None:
            settings["min_size"] = args.min_size
        model = load_run_model(args.run_dir, args.model, search_path=os.getcwd())
        table = predict_folder(
            model,
            args.folder,
            args.output,
            Conversion(**settings),
            batch_size=args.batch_size,
            threads=args.threads,
        )
    except ValueError as error:  # bad files, folders and choices name themselves
        parser.exit(1, f"error: {error}\n")
    counts = ", ".join(f"{k} {v}" for k, v in table["predicted"].value_counts().items())
    print(f"{len(table)} images -> {args.output} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
