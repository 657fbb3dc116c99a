"""Training stage: packed arrays -> one trained run per `runs:` entry.

Takes `results/packed/{train,validation}/` and a run's settings; produces
`results/runs/{run}/` with history.tsv, batches.tsv, timing.tsv, predictions.tsv, metrics.json,
config.resolved.yaml and model.keras/best.keras (`fit` for deep runs, `baseline` for the
HOG + logistic-regression baseline; tables written by `tables`). Models and their in-model
augmentation live in `models` and `layers`, the batch stream in `batches`, and the few
backend-specific switches (TensorFlow or JAX) in `backend`.
"""
