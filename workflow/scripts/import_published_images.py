from deepmerge_da.data.published import import_published
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p, i, w = snakemake.params, snakemake.input, snakemake.wildcards
    import_published(path=snakemake.output[0], filters=list(p.filters), images=i.get("images"),
                     labels=i.get("labels"), fits=i.get("fits"), what=f"{w.pair} {w.domain}", **p.options)
