from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.predict.ensemble import predict

with rule_logging(snakemake.log[0]):
    predict(list(snakemake.params.inputs), list(snakemake.input.models), snakemake.output.csv,
            cache_dir=snakemake.params.cache_dir, threads=snakemake.threads, progress=True, **snakemake.params.options)
