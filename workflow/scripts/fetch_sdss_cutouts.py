import json

from deepmerge_da.atomic import write_text_atomic
from deepmerge_da.fetch import fetch_cutouts
from deepmerge_da.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p = snakemake.params
    report = fetch_cutouts(snakemake.input.selection, p.out_dir, p.base_url, scale=p.scale, width=p.size,
                           height=p.size, concurrency=p.concurrency, rate_per_s=p.rate_per_s, timeout_s=p.timeout_s,
                           max_retries=p.max_retries, backoff_s=p.backoff_s, max_fail_fraction=p.max_fail_fraction)
    # written last: marks a complete fetch (the cutouts and manifest.csv stay when the fetch fails)
    write_text_atomic(snakemake.output[0], json.dumps({
        "base_url": p.base_url, "manifest": str(report.manifest_path), "objects": report.n_total,
        "fetched": report.n_ok, "kept_existing": report.n_skipped, "failed": report.n_failed,
        "failure_reasons": dict(report.failure_reasons), "elapsed_s": round(report.elapsed_s, 1)}, indent=1) + "\n")
