from deepmerge_da.data.http import fetch_file
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    fetch_file(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256)
