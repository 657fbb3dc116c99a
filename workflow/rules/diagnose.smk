def run_outputs(wildcards):
    """A run's training outputs: the deep rule's when it has a model, else the baseline's."""
    names = TRAIN_OUTPUTS + (
        ["batches.tsv", "model.keras"] if wildcards.run in DEEP_RUNS else []
    )
    return [f"results/runs/{wildcards.run}/{name}" for name in names]


rule diagnose_run:
    input:
        run=run_outputs,
        train=packed("train"),
        validation=packed("validation"),
        code=library_files(
            "diagnose",
            "diagnostics_findings",
            "diagnose_run",
            "batchnorm",
            "data",
            "packed",
        ),
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
    params:
        settings=lambda w: run_settings(w.run),
    script:
        "../scripts/diagnose.py"
