from deepmerge_da.data.sources import import_cutouts
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    import_cutouts(snakemake.params.cutout_dir, path=snakemake.output[0],
                   max_nonmergers=snakemake.params.max_nonmergers, seed=snakemake.params.seed)
