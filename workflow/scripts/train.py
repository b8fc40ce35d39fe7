from pathlib import Path

from deepmerge_da.io.rulelog import rule_logging
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
