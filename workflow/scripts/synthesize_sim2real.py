from deepmerge_da.data.sources import synthesize_sim2real
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    synthesize_sim2real(snakemake.wildcards.domain, dict(snakemake.params.synthetic), seed=snakemake.params.seed,
                        threads=snakemake.threads, path=snakemake.output[0])
