from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.report.image_figures import plot_examples

with rule_logging(snakemake.log[0]):
    plot_examples(snakemake.input.source, snakemake.input.target, snakemake.output.png, snakemake.output.pdf,
                  f"{snakemake.params.paper_figure} of the paper, redrawn. Data: {snakemake.params.data_description}")
