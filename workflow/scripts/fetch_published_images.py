from deepmerge_da.fetch import fetch_file
from deepmerge_da.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    fetch_file(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256)
