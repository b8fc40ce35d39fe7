from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.report.tables import render_table

with rule_logging(snakemake.log[0]):
    render_table(list(snakemake.input.metrics), kind=snakemake.params.kind, pair=snakemake.params.pair,
                 csv_path=snakemake.output.csv, md_path=snakemake.output.md, tex_path=snakemake.output.tex,
                 data_description=snakemake.params.data_description)
