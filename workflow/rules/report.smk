# Seconds of plotting each: run by Snakemake itself, never submitted as cluster jobs.
localrules:
    plot_run,
    plot_samples,
    compare_runs,
    verify_fixes,


rule plot_run:
    input:
        run=run_outputs,
        diagnostics="results/runs/{run}/seed-{replicate}/diagnostics.json",
        code=library_files("report_run.py"),
    output:
        curves=report(
            "results/runs/{run}/seed-{replicate}/curves.png",
            caption="../report/curves.rst",
            category="Runs",
            subcategory="{run}",
            labels={"replicate": "seed-{replicate}", "file": "curves"},
        ),
        batches=report(
            "results/runs/{run}/seed-{replicate}/batches.png",
            caption="../report/batches.rst",
            category="Runs",
            subcategory="{run}",
            labels={"replicate": "seed-{replicate}", "file": "batches"},
        ),
        confusion=report(
            "results/runs/{run}/seed-{replicate}/confusion.png",
            caption="../report/confusion.rst",
            category="Runs",
            subcategory="{run}",
            labels={"replicate": "seed-{replicate}", "file": "confusion"},
        ),
    log:
        "results/logs/plot/{run}/seed-{replicate}.log",
    benchmark:
        "results/benchmarks/plot/{run}/seed-{replicate}.tsv"
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
        # Siblings included: an input function, so it waits for the plan_fixes checkpoints.
        runs=lambda w: run_files(*TRAIN_OUTPUTS, runs=all_runs()),
        robust=lambda w: deep_run_files("predictions_precise_bn.tsv", runs=all_runs()),
        diagnostics=lambda w: run_files("diagnostics.json", runs=all_runs()),
        fixes=expand("results/runs/{run}/fixes.tsv", run=VERIFYING_RUNS),
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
    script:
        "../scripts/report_comparison.py"


rule plot_model_view:
    input:
        # The first replicate's model: the view shows inputs, which all replicates share.
        model="results/runs/{run}/seed-0/model.keras",
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
        run=_one_of(DEEP_RUNS),
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


rule verify_fixes:
    input:
        plan="results/runs/{run}/fixes.json",
        runs=lambda w: run_files(
            "predictions.tsv",
            "predictions_precise_bn.tsv",
            "history.tsv",
            "metrics.json",
            # The symptoms: batch-loss spikes, and early stopping scored held out.
            "batches.tsv",
            "validation_record.npz",
            runs=[w.run, *siblings(w.run)],
        ),
        diagnostics=lambda w: run_files(
            "diagnostics.json", runs=[w.run, *siblings(w.run)]
        ),
        code=library_files("report_fixes.py"),
    output:
        markdown=report(
            "results/runs/{run}/fixes.md",
            caption="../report/fixes.rst",
            category="Verified fixes",
            subcategory="{run}",
        ),
        tsv="results/runs/{run}/fixes.tsv",
        curves=report(
            "results/runs/{run}/fixes.png",
            caption="../report/fixes_curves.rst",
            category="Verified fixes",
            subcategory="{run}",
        ),
    log:
        "results/logs/verify_fixes/{run}.log",
    benchmark:
        "results/benchmarks/verify_fixes/{run}.tsv"
    wildcard_constraints:
        run=_one_of(VERIFYING_RUNS),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report_fixes.py"
