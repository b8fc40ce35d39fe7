from deepmerge_da.data.fetch import fetch_cutout_dir
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p = snakemake.params
    # fetched.json (snakemake.output[0], in out_dir) is written last: it marks a complete fetch; the cutouts and
    # manifest.csv stay when the fetch fails
    fetch_cutout_dir(snakemake.input.selection, p.out_dir, catalogue_files=snakemake.input.catalogues,
                     base_url=p.base_url, scale=p.scale, width=p.size, height=p.size, concurrency=p.concurrency,
                     rate_per_s=p.rate_per_s, timeout_s=p.timeout_s, max_retries=p.max_retries, backoff_s=p.backoff_s,
                     max_fail_fraction=p.max_fail_fraction, allow_redirect_hosts=p.allow_redirect_hosts)
