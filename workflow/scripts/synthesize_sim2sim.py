from deepmerge_da.data.sources import synthesize_sim2sim
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    synthesize_sim2sim(dict(snakemake.params.synthetic), seed=snakemake.params.seed, threads=snakemake.threads,
                       source_path=snakemake.output.source, target_path=snakemake.output.target)
