from pathlib import Path

from deepmerge_da.data.illustris import import_illustris
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    import_illustris(Path(snakemake.input.labels).parent, pair=p.pair, synthetic=dict(p.synthetic), seed=p.seed,
                     source_path=out.source, target_path=out.get("target"), selection=dict(p.selection))
