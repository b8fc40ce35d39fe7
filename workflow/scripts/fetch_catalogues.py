from deepmerge_da.fetch import fetch_file
from deepmerge_da.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p = snakemake.params
    fetch_file(p.darg_url, snakemake.output.darg, sha256=p.darg_sha256)
    fetch_file(p.gz1_url, snakemake.output.gz1, sha256=p.gz1_sha256)
