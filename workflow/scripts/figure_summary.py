from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.report.figures import plot_metric_bars, plot_roc, plot_score_histograms

PLOTS = {"metrics": plot_metric_bars, "roc": plot_roc, "scores": plot_score_histograms}


def by_method(paths, all_seeds):
    """{method: path} (first seed) or {method: [path per seed]}, in the config's method order."""
    found = {}
    for path in paths:
        found.setdefault(path.split("/")[-3], []).append(path)
    return {m: (found[m] if all_seeds else found[m][0]) for m in snakemake.params.methods if m in found}


with rule_logging(snakemake.log[0]):
    kind = snakemake.wildcards.summary
    runs = by_method(snakemake.input.metrics, True) if kind == "metrics" else by_method(snakemake.input.predictions,
                                                                                        False)
    PLOTS[kind](runs, snakemake.output.png, snakemake.output.pdf,
                f"{snakemake.params.paper_figure} of the paper, redrawn ({snakemake.wildcards.network}). "
                f"Data: {snakemake.params.data_description}")
