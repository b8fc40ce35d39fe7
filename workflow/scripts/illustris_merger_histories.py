from pathlib import Path

from deepmerge_da.data.illustris import fetch_merger_histories
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p = snakemake.params
    fetch_merger_histories(Path(snakemake.output[0]).parent, pair=snakemake.wildcards.pair,
                           selection=dict(p.selection), **dict(p.api))
