from simtrain.common.logs import log_to

# First, so the imports' own messages (TensorFlow's) land in the log too.
log_to(snakemake.log[0])

from simtrain.reporting.artifacts import compare_run_dirs

compare_run_dirs(
    snakemake.params.run_dirs,
    tsv=snakemake.output.tsv,
    markdown=snakemake.output.markdown,
    accuracy_plot=snakemake.output.accuracy,
    best_plot=snakemake.output.best,
    learning_curve_plot=snakemake.output.learning_curve,
)
