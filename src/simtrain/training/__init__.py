"""Training stage: packed arrays -> one trained run per `runs:` entry.

Takes `results/packed/{train,validation}/` and a run's settings; produces
`results/runs/{run}/` with history.tsv, batches.tsv, timing.tsv, predictions.tsv,
validation_record.npz, metrics.json, config.resolved.yaml and model.keras/best.keras (`fit`
for deep runs, `baseline` for the HOG + logistic-regression baseline; `recorder` keeps the
per-batch, per-epoch and per-image records, the best epoch's model and the resumable backup;
`tables` writes them). A run's training options (`lr_schedule`, `warmup_epochs`,
`early_stopping`, `checkpoint_monitor`, `label_smoothing`, `weight_decay`,
`batchnorm_momentum`, `model_params`) are checked in `options` and `model_params` (without
Keras, also at plan time) and applied by `schedules`, `optimization` and `callbacks`.
Models and their in-model augmentation live in `models` and `layers` (keras.applications
architectures, and the Keras-free table the plan checks them against, in `applications`), the
batch stream in `batches`, and the few backend-specific switches (TensorFlow or JAX) in `backend`.
"""
