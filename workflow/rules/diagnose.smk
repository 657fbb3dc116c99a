localrules:
    plan_fixes,


rule diagnose_run:
    input:
        run=run_outputs,
        # Each epoch's weights: model evidence where the curve jumps (deep runs).
        epochs=lambda w: (
            [f"results/runs/{w.run}/seed-{w.replicate}/epochs"]
            if is_deep(w.run)
            else []
        ),
        # The other seeds' curves: ordinary training movement is estimated from all of them.
        replicates=lambda w: [
            f"{d}/history.tsv"
            for d in seed_dirs(w.run)
            if d != f"results/runs/{w.run}/seed-{w.replicate}"
        ],
        # This replicate's predictions on each labelled real-image set (SIM_TO_REAL_GAP).
        evaluation=lambda w: [
            f"results/runs/{w.run}/seed-{w.replicate}/evaluation/{s}/predictions.tsv"
            for s in EVALUATION_SETS
        ],
        train=packed("train"),
        validation=packed("validation"),
        code=library_files("diagnose.py"),
    output:
        json="results/runs/{run}/seed-{replicate}/diagnostics.json",
        markdown=report(
            "results/runs/{run}/seed-{replicate}/diagnostics.md",
            caption="../report/diagnostics.rst",
            category="Runs",
            subcategory="{run}",
            labels={"replicate": "seed-{replicate}", "file": "diagnostics"},
        ),
    log:
        "results/logs/diagnose/{run}/seed-{replicate}.log",
    benchmark:
        "results/benchmarks/diagnose/{run}/seed-{replicate}.tsv"
    priority: verification_priority
    conda:
        TRAIN_ENV
    # One thread: its start-up (imports, model loading) is serial, so two diagnoses side by
    # side finish sooner than one after the other with two threads each.
    threads: 1
    resources:
        # Peaks at ~4.3 GB on ResNet50 (the model, its activations over the validation set).
        mem_mb=6000,
    params:
        settings=lambda w: run_settings(w.run, w.replicate),
        keras_backend=config["keras_backend"],
    script:
        "../scripts/diagnose.py"


# Decides, once a verifying run is diagnosed, which sibling runs verify its fixes: Snakemake
# re-plans after it, so the siblings train and are diagnosed like any run.
checkpoint plan_fixes:
    input:
        diagnostics=lambda w: [f"{d}/diagnostics.json" for d in seed_dirs(w.run)],
        code=library_files("plan_fixes.py"),
    output:
        plan="results/runs/{run}/fixes.json",
    log:
        "results/logs/plan_fixes/{run}.log",
    wildcard_constraints:
        run=_one_of(VERIFYING_RUNS),
    conda:
        "../../envs/report.yaml"
    params:
        settings=lambda w: run_settings(w.run),
    script:
        "../scripts/plan_fixes.py"
