"""simtrain: simulate images per class, train classifiers on them, explain their learning curves.

The packages follow the workflow's DAG; each says what its stage takes and produces:

- `simtrain.data`: simulate -> split -> pack (PNG shards, train/validation folders, uint8 arrays)
- `simtrain.training`: packed arrays -> trained runs (models, per-epoch and per-batch tables)
- `simtrain.diagnosis`: a run's tables and model -> diagnostics.json/.md (why curves fluctuate)
- `simtrain.reporting`: all runs -> comparison tables, plots, sample grids
- `simtrain.config`: checks a config before any job starts
- `simtrain.common`: atomic file writes, logging set-up, failpoints for fault-injection tests
"""
