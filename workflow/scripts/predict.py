from deepmerge_da.predict.predict import predict
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    predict(list(snakemake.params.inputs), list(snakemake.input.models), snakemake.output.csv,
            threshold=snakemake.params.threshold, filters=snakemake.params.filters,
            normalisation=snakemake.params.normalisation, cache_dir=snakemake.params.cache_dir,
            sdss_base_url=snakemake.params.sdss_base_url, threads=snakemake.threads, progress=True)
