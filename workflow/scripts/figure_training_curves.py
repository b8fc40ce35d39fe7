from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.report.figures import plot_training_curves

with rule_logging(snakemake.log[0]):
    w = snakemake.wildcards
    plot_training_curves(snakemake.input.history, snakemake.output.png,
                         f"{w.pair} / {w.network} / {w.method} / seed {w.seed}",
                         f"Data: {snakemake.params.data_description}")
