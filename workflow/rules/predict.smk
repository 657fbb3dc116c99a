# Prediction: a chosen run's model applied to folders of unlabelled images.
rule ingest_prediction_set:
    input:
        code=library_files("ingest_set.py"),
    output:
        multiext("results/predictions/{prediction}/", "images.npy", "files.tsv"),
    log:
        "results/logs/ingest_prediction/{prediction}.log",
    benchmark:
        "results/benchmarks/ingest_prediction/{prediction}.tsv"
    wildcard_constraints:
        prediction=_one_of(PREDICTIONS),
    conda:
        "../../envs/data.yaml"
    threads: 2
    params:
        folder=lambda w: config["predict"][w.prediction]["folder"],
        key=lambda w: f"predict.{w.prediction}.folder",
        fingerprint=lambda w: prediction_fingerprint(w.prediction),
        classes=None,
        conversion=conversion_settings(),
    script:
        "../scripts/ingest_set.py"


rule predict_images:
    input:
        images="results/predictions/{prediction}/images.npy",
        files="results/predictions/{prediction}/files.tsv",
        model=lambda w: run_model_file(
            config["predict"][w.prediction]["run"],
            config["predict"][w.prediction]["replicate"],
            config["predict"][w.prediction]["model"],
        ),
        code=library_files("predict.py"),
    output:
        "results/predictions/{prediction}/predictions.tsv",
    log:
        "results/logs/predict/{prediction}.log",
    benchmark:
        "results/benchmarks/predict/{prediction}.tsv"
    wildcard_constraints:
        prediction=_one_of(PREDICTIONS),
    conda:
        TRAIN_ENV
    threads: 1
    params:
        choice=lambda w: config["predict"][w.prediction]["model"],
        keras_backend=config["keras_backend"],
    script:
        "../scripts/predict.py"
