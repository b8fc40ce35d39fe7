from deepmerge_da.rulelog import rule_logging
from deepmerge_da.sources import synthesize_pair

with rule_logging(snakemake.log[0]):
    synthesize_pair(snakemake.wildcards.pair, dict(snakemake.params.synthetic), seed=snakemake.params.seed,
                    threads=snakemake.threads, source_path=snakemake.output.source,
                    target_path=snakemake.output.target)
