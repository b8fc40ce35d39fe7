from pathlib import Path

from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.report.evaluate import evaluate_run
from deepmerge_da.training.loop import train_run

with rule_logging(snakemake.log[0]):
    # params.train: deepmerge_da.config.train_arguments for this run (common.smk: train_call), as deepmerge-da train
    train_run(
        **snakemake.params.train,
        source=snakemake.input.source,
        target=snakemake.input.target,
        out_dir=str(Path(snakemake.output.model).parent),
        init_checkpoint=snakemake.input.init or None,
        threads=snakemake.threads,
    )
    # Then the test-set evaluation, in the same process (no second start-up), as deepmerge-da evaluate.
    evaluate_run(checkpoint=snakemake.output.model, source=snakemake.input.source, target=snakemake.input.target,
                 metrics_path=snakemake.output.metrics, predictions_path=snakemake.output.predictions,
                 threads=snakemake.threads)
