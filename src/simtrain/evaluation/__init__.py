"""Evaluation stage: trained runs applied to folders of real images.

Takes the runs' models (`model.keras`, `best.keras`, `precise_bn.keras`, or the baseline's
`model.joblib`: `run_model`) and folders ingested by `simtrain.data.ingest` into arrays; scores
every replicate on each labelled evaluation set (`scoring`: per-image predictions and a
confusion matrix per set) and writes predictions for unlabelled folders (`predict`; `cli` is
the `simtrain-predict` command). The report over runs and sets is
`simtrain.reporting.evaluation`; the sim-to-real gap finding `simtrain.diagnosis.sim_to_real`.
"""
