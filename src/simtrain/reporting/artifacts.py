"""Glue between run folders and the comparison and fix verification: what the report rules
that read many runs call (one run's plots and the sample grids: `folder_plots`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from simtrain.common.failpoints import failpoint
from simtrain.diagnosis.fixes import read_fix_plan
from simtrain.reporting.comparison import compare_runs, group_replicates, learning_curve
from simtrain.reporting.comparison_markdown import write_comparison
from simtrain.reporting.plots import (
    plot_best_accuracy,
    plot_learning_curve,
    plot_validation_accuracy,
)
from simtrain.reporting.run_results import load_run
from simtrain.reporting.verification import (
    RunGroup,
    decide,
    plot_before_after,
    verify_fixes,
    write_verification,
)


def compare_run_dirs(
    run_dirs: Sequence[str | os.PathLike],
    *,
    tsv,
    markdown,
    accuracy_plot,
    best_plot,
    learning_curve_plot,
    fix_tables: Sequence[str | os.PathLike] = (),
) -> None:
    results = [load_run(d) for d in run_dirs]
    verified = [
        pd.read_csv(path, sep="\t").assign(run=Path(path).parent.name) for path in fix_tables
    ]
    fixes = pd.concat(verified, ignore_index=True) if verified else None
    symptom_p = [] if fixes is None else fixes["symptom_p"].tolist()
    # One Holm family for everything comparison.md tests: the baseline tests and the fixes'.
    table = compare_runs(results, other_tests=symptom_p)
    if fixes is not None:
        fixes["symptom_p_holm"] = table.attrs["other_p_holm"]
        decided = [decide(row, row["symptom_p_holm"]) for _, row in fixes.iterrows()]
        fixes["verdict"] = [verdict for verdict, _ in decided]
        fixes["reason"] = [reason for _, reason in decided]
    write_comparison(table, tsv, markdown, fixes)
    failpoint("compare.between_files")
    histories = {
        run: [r.history for r in group if r.history is not None]
        for run, group in group_replicates(results).items()
    }
    plot_validation_accuracy(histories, accuracy_plot)
    plot_best_accuracy(table, best_plot)
    plot_learning_curve(learning_curve(results), learning_curve_plot)


def verify_run_dirs(
    plan_path: str | os.PathLike,
    run_dirs: Sequence[str | os.PathLike],
    *,
    markdown,
    tsv,
    curves,
) -> None:
    """fixes.md/.tsv/.png of one verifying run, from its and its siblings' replicate folders."""
    plan = read_fix_plan(plan_path)
    groups = {
        run: RunGroup(run, group)
        for run, group in group_replicates([load_run(d) for d in run_dirs]).items()
    }
    table = verify_fixes(plan, groups)
    write_verification(plan, table, markdown, tsv)
    plot_before_after(plan, groups, curves)
