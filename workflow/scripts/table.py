from deepmerge_da.rulelog import rule_logging
from deepmerge_da.tables import render_pair_table

with rule_logging(snakemake.log[0]):
    render_pair_table(list(snakemake.input.metrics), pair=snakemake.params.pair, csv_path=snakemake.output.csv,
                      md_path=snakemake.output.md, data_description=snakemake.params.data_description)
