rule diagnose_run:
    input:
        run=run_outputs,
        train=packed("train"),
        validation=packed("validation"),
        code=library_files("diagnose.py"),
    output:
        json="results/runs/{run}/diagnostics.json",
        markdown=report(
            "results/runs/{run}/diagnostics.md",
            caption="../report/diagnostics.rst",
            category="Runs",
            subcategory="{run}",
        ),
    log:
        "results/logs/diagnose/{run}.log",
    benchmark:
        "results/benchmarks/diagnose/{run}.tsv"
    conda:
        TRAIN_ENV
    threads: min(2, MACHINE_CPUS)
    resources:
        # Peaks at ~4.3 GB on ResNet50 (the model, its activations over the validation set).
        mem_mb=6000,
    params:
        settings=lambda w: run_settings(w.run),
        keras_backend=config["keras_backend"],
    script:
        "../scripts/diagnose.py"
