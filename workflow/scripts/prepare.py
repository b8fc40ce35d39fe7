from deepmerge_da.data.preprocess import prepare_file
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p = snakemake.params
    prepare_file(snakemake.input[0], snakemake.output[0], filters=list(p.filters), image_size=p.image_size,
                 fractions=list(p.fractions), n_per_class=p.n_per_class, seed=p.seed)
