"""Diagnosis stage: a run's tables (and model) -> why its learning curves look as they do.

Takes `results/runs/{run}/` (history, batches, predictions, metrics, model.keras) and produces
`diagnostics.json` and `diagnostics.md` (`run_dir`). `diagnostics.diagnose` runs every check:
the sampling-noise band (`noise`), partial epochs and validation (`coverage`), BatchNorm
statistics (`batchnorm`, with evidence from the model in `model_evidence`), unstable steps
(`optimization`), `overfitting` and class `imbalance`. `history` reads any Keras CSVLogger
file, and `cli` is the command line.
"""
