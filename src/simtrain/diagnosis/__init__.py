"""Diagnosis stage: a run's tables (and model) -> why its learning curves look as they do.

Takes `results/runs/{run}/` (history, batches, predictions, metrics, model.keras) and produces
`diagnostics.json` and `diagnostics.md` (`run_dir`). `diagnostics.diagnose` runs every check:
the noise model (`noise`, its tests in `curve_tests`, the verdict in `verdict`, paired when
the per-epoch `validation_record` is given), partial epochs and validation (`coverage`), BatchNorm
statistics (`batchnorm`, with evidence from the model in `model_evidence`), unstable steps
(`optimization`), `overfitting` (and over-confidence), class `imbalance` and under-training
(`undertraining`). `history` reads any Keras CSVLogger
file, and `cli` is the command line.
"""
