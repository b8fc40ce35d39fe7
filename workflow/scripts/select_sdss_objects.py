import logging

from deepmerge_da.data.catalogues import build_selection, write_selection
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p = snakemake.params
    sel = build_selection(snakemake.input.darg, snakemake.input.gz1, seed=p.seed, darg_columns=dict(p.darg_columns),
                          gz1_columns=dict(p.gz1_columns), **p.options)
    log = logging.getLogger("select_sdss_objects")
    for note in sel.notes:
        log.info(note)
    for name, reason in sel.bad:
        log.warning("bad catalogue row %s: %s (not selected)", name, reason)
    log.info("selected %d post-mergers and %d non-mergers (%d bad rows) -> %s", sel.n_mergers, sel.n_nonmergers,
             len(sel.bad), snakemake.output[0])
    write_selection(sel.table, snakemake.output[0])
