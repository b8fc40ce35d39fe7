from pathlib import Path

from deepmerge_da.data.illustris import fetch_catalogue
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p = snakemake.params
    fetch_catalogue(Path(snakemake.output.catalogue).parent, pair=snakemake.wildcards.pair, selection=dict(p.selection),
                    page_size=p.page_size, **dict(p.api))
