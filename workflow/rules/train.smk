rule train_run:
    input:
        train=packed("train"),
        validation=packed("validation"),
        code=library_files("train.py"),
    output:
        multiext("results/runs/{run}/", *TRAIN_OUTPUTS),
        batches="results/runs/{run}/batches.tsv",
        model="results/runs/{run}/model.keras",
        best="results/runs/{run}/best.keras",
        record="results/runs/{run}/validation_record.npz",
    log:
        "results/logs/train/{run}.log",
    benchmark:
        "results/benchmarks/train/{run}.tsv"
    wildcard_constraints:
        run="|".join(DEEP_RUNS) or "^$",
    conda:
        "../../envs/train.yaml"
    # All local cores: trainings never run side by side fighting over a CPU.
    threads: min(8, os.cpu_count() or 1)
    resources:
        training_jobs=1,
        mem_mb=8000,
    params:
        settings=lambda w: run_settings(w.run),
        resolved=lambda w: resolved_config(w.run),
        mixed_precision=config["execution"]["mixed_precision"],
        data_parallel=config["execution"]["data_parallel"],
        loader_workers=config["execution"]["loader_workers"],
    script:
        "../scripts/train.py"


rule train_baseline:
    input:
        train=packed("train"),
        validation=packed("validation"),
        code=library_files("train_baseline.py"),
    output:
        multiext("results/runs/{run}/", *TRAIN_OUTPUTS),
    log:
        "results/logs/train/{run}.log",
    benchmark:
        "results/benchmarks/train/{run}.tsv"
    wildcard_constraints:
        run="|".join(BASELINE_RUNS) or "^$",
    conda:
        "../../envs/train.yaml"
    params:
        settings=lambda w: run_settings(w.run),
        resolved=lambda w: resolved_config(w.run),
    script:
        "../scripts/train_baseline.py"
