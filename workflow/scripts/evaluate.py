from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.report.evaluate import evaluate_run

with rule_logging(snakemake.log[0]):
    evaluate_run(checkpoint=snakemake.input.model, source=snakemake.input.source, target=snakemake.input.target,
                 metrics_path=snakemake.output.metrics, predictions_path=snakemake.output.predictions,
                 threads=snakemake.threads)
