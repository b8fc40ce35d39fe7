from pathlib import Path

from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.report.selection_report import selection_table

with rule_logging(snakemake.log[0]):
    selection_table([str(Path(h).parent) for h in snakemake.input.histories], out_csv=snakemake.output.csv,
                    out_md=snakemake.output.md, out_png=snakemake.output.png,
                    data_description=snakemake.params.data_description)
