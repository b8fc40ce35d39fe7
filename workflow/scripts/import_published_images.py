from deepmerge_da.data.published import import_published
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p, i = snakemake.params, snakemake.input
    import_published(path=snakemake.output[0], filters=list(p.filters), images=i.get("images"),
                     labels=i.get("labels"), fits=i.get("fits"), pixel_scale=p.pixel_scale, units=p.units,
                     layout=p.layout, what=f"{snakemake.wildcards.pair} {snakemake.wildcards.domain}")
