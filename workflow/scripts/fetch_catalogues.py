from deepmerge_da.data.http import fetch_file
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p = snakemake.params
    # without a configured sha256 the digest of the download is recorded beside it (<file>.sha256), with a warning
    for url, dest, sha256 in ((p.darg_url, snakemake.output.darg, p.darg_sha256),
                              (p.gz1_url, snakemake.output.gz1, p.gz1_sha256)):
        fetch_file(url, dest, sha256=sha256, allow_redirect_hosts=p.allow_redirect_hosts, record_sha256=True)
