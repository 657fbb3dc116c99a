# Seconds of plotting each: run by Snakemake itself, never submitted as cluster jobs.
localrules:
    plot_run,
    plot_samples,
    compare_runs,


rule plot_run:
    input:
        run=run_outputs,
        diagnostics="results/runs/{run}/diagnostics.json",
        code=library_files("report_run.py"),
    output:
        curves=report(
            "results/runs/{run}/curves.png",
            caption="../report/curves.rst",
            category="Runs",
            subcategory="{run}",
        ),
        batches=report(
            "results/runs/{run}/batches.png",
            caption="../report/batches.rst",
            category="Runs",
            subcategory="{run}",
        ),
        confusion=report(
            "results/runs/{run}/confusion.png",
            caption="../report/confusion.rst",
            category="Runs",
            subcategory="{run}",
        ),
    log:
        "results/logs/plot/{run}.log",
    benchmark:
        "results/benchmarks/plot/{run}.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report_run.py"


rule plot_samples:
    input:
        packed("{split}"),
        code=library_files("report_samples.py"),
    output:
        report(
            "results/samples/{split}.png",
            caption="../report/samples.rst",
            category="Data",
        ),
    log:
        "results/logs/samples/{split}.log",
    benchmark:
        "results/benchmarks/samples/{split}.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        per_class=6,
        seed=config["seed"],
    script:
        "../scripts/report_samples.py"


rule compare_runs:
    input:
        runs=run_files(*TRAIN_OUTPUTS, "diagnostics.json"),
        code=library_files("report_comparison.py"),
    output:
        tsv=report(
            "results/comparison.tsv",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        markdown=report(
            "results/comparison.md",
            caption="../report/comparison_table.rst",
            category="Comparison",
        ),
        accuracy=report(
            "results/plots/validation_accuracy.png",
            caption="../report/validation_accuracy.rst",
            category="Comparison",
        ),
        best=report(
            "results/plots/best_accuracy.png",
            caption="../report/best_accuracy.rst",
            category="Comparison",
        ),
        learning_curve=report(
            "results/plots/learning_curve.png",
            caption="../report/learning_curve.rst",
            category="Comparison",
        ),
    log:
        "results/logs/compare.log",
    benchmark:
        "results/benchmarks/compare.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        run_dirs=expand("results/runs/{run}", run=RUNS),
    script:
        "../scripts/report_comparison.py"


rule plot_model_view:
    input:
        model="results/runs/{run}/model.keras",
        train=packed("train"),
        validation=packed("validation"),
        code=library_files("report_model_view.py"),
    output:
        report(
            "results/samples/model_view/{run}.png",
            caption="../report/model_view.rst",
            category="Data",
            subcategory="As the model sees it",
        ),
    log:
        "results/logs/model_view/{run}.log",
    benchmark:
        "results/benchmarks/model_view/{run}.tsv"
    wildcard_constraints:
        run="|".join(DEEP_RUNS) or "^$",
    conda:
        TRAIN_ENV
    threads: 1
    params:
        per_class=3,
        seed=config["seed"],
        keras_backend=config["keras_backend"],
        model=lambda w: config["runs"][w.run]["model"],
    script:
        "../scripts/report_model_view.py"
