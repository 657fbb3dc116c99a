rule train_run:
    input:
        train=packed("train"),
        validation=packed("validation"),
        code=library_files("train.py"),
        model=model_files,
        fix_plan=fix_plan_input,
    output:
        multiext("results/runs/{run}/seed-{replicate}/", *TRAIN_OUTPUTS),
        batches="results/runs/{run}/seed-{replicate}/batches.tsv",
        model="results/runs/{run}/seed-{replicate}/model.keras",
        best="results/runs/{run}/seed-{replicate}/best.keras",
        record="results/runs/{run}/seed-{replicate}/validation_record.npz",
        # The final weights with precise BatchNorm statistics, and their predictions: the
        # score the comparison decides on (robust to where the last epoch landed).
        precise_bn="results/runs/{run}/seed-{replicate}/precise_bn.keras",
        robust="results/runs/{run}/seed-{replicate}/predictions_precise_bn.tsv",
        # Each epoch's weights (small models only; empty otherwise): the diagnosis attributes
        # a jump of the validation curve at the epoch where it happened.
        epochs=directory("results/runs/{run}/seed-{replicate}/epochs"),
    log:
        "results/logs/train/{run}/seed-{replicate}.log",
    benchmark:
        "results/benchmarks/train/{run}/seed-{replicate}.tsv"
    wildcard_constraints:
        run=DEEP_RUN_PATTERN,
    priority: verification_priority
    conda:
        TRAIN_ENV
    # All local cores: trainings never run side by side fighting over a CPU.
    threads: min(8, MACHINE_CPUS)
    resources:
        training_jobs=1,
        mem_mb=8000,
    params:
        settings=lambda w: run_settings(w.run, w.replicate),
        resolved=lambda w: resolved_config(w.run, w.replicate),
        # Changes the numbers, so a rerun trigger. config["execution"] (how, not what) is
        # read by the script instead: a param would retrain every run when it changes.
        keras_backend=config["keras_backend"],
    script:
        "../scripts/train.py"


rule train_baseline:
    input:
        train=packed("train"),
        validation=packed("validation"),
        code=library_files("train_baseline.py"),
    output:
        multiext("results/runs/{run}/seed-{replicate}/", *TRAIN_OUTPUTS),
        model=f"results/runs/{{run}}/seed-{{replicate}}/{BASELINE_MODEL_FILE}",
    log:
        "results/logs/train/{run}/seed-{replicate}.log",
    benchmark:
        "results/benchmarks/train/{run}/seed-{replicate}.tsv"
    wildcard_constraints:
        run=BASELINE_RUN_PATTERN,
    conda:
        TRAIN_ENV
    params:
        settings=lambda w: run_settings(w.run, w.replicate),
        resolved=lambda w: resolved_config(w.run, w.replicate),
    script:
        "../scripts/train_baseline.py"
