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
        "../../envs/train.yaml"
    params:
        settings=lambda w: run_settings(w.run),
    script:
        "../scripts/diagnose.py"
