# Sim-to-real evaluation: labelled folders of real images, scored by every trained run.
rule ingest_evaluation_set:
    input:
        code=library_files("ingest_set.py"),
    output:
        multiext(
            "results/evaluation/{evaluation}/",
            "images.npy",
            "labels.npy",
            "classes.json",
            "files.tsv",
        ),
    log:
        "results/logs/ingest_evaluation/{evaluation}.log",
    benchmark:
        "results/benchmarks/ingest_evaluation/{evaluation}.tsv"
    wildcard_constraints:
        evaluation=_one_of(EVALUATION_SETS),
    conda:
        "../../envs/data.yaml"
    threads: 2
    params:
        folder=lambda w: config["evaluation"][w.evaluation],
        key=lambda w: f"evaluation.{w.evaluation}",
        fingerprint=lambda w: evaluation_fingerprint(w.evaluation),
        classes=CLASSES,
        conversion=conversion_settings(),
    script:
        "../scripts/ingest_set.py"


rule evaluate_run:
    input:
        # The decision measure's model: the final weights with precise BatchNorm statistics.
        model=lambda w: run_model_file(w.run, w.replicate, "precise_bn"),
        metrics="results/runs/{run}/seed-{replicate}/metrics.json",
        sets=expand(
            "results/evaluation/{evaluation}/{name}",
            evaluation=EVALUATION_SETS,
            name=["images.npy", "labels.npy", "classes.json", "files.tsv"],
        ),
        code=library_files("evaluate.py"),
    output:
        expand(
            "results/runs/{{run}}/seed-{{replicate}}/evaluation/{evaluation}/{name}",
            evaluation=EVALUATION_SETS,
            name=["predictions.tsv", "confusion.tsv"],
        ),
    log:
        "results/logs/evaluate/{run}/seed-{replicate}.log",
    benchmark:
        "results/benchmarks/evaluate/{run}/seed-{replicate}.tsv"
    conda:
        TRAIN_ENV
    threads: 1
    params:
        sets=EVALUATION_SETS,
        keras_backend=config["keras_backend"],
    script:
        "../scripts/evaluate.py"


rule report_evaluation:
    input:
        # Siblings included, as in compare_runs: an input function waits for plan_fixes.
        scores=lambda w: run_files(
            *[f"evaluation/{s}/predictions.tsv" for s in EVALUATION_SETS],
            runs=all_runs(),
        ),
        runs=lambda w: run_files("predictions.tsv", "metrics.json", runs=all_runs()),
        sets=expand(
            "results/evaluation/{evaluation}/files.tsv", evaluation=EVALUATION_SETS
        ),
        code=library_files("report_evaluation.py"),
    output:
        markdown=report(
            "results/evaluation.md",
            caption="../report/evaluation.rst",
            category="Sim-to-real evaluation",
        ),
        tsv="results/evaluation.tsv",
    log:
        "results/logs/report_evaluation.log",
    benchmark:
        "results/benchmarks/report_evaluation.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        classes=CLASSES,
        sets=EVALUATION_SETS,
    script:
        "../scripts/report_evaluation.py"
