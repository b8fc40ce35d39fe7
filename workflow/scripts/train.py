from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.training.loop import train_run

with rule_logging(snakemake.log[0]):
    w = snakemake.wildcards
    train_run(source=snakemake.input.source, target=snakemake.input.target,
              out_dir=str(snakemake.output.model).rsplit("/", 1)[0], pair=w.pair, network=w.network,
              method=w.method, seed=int(w.seed), hp=dict(snakemake.params.hp),
              max_epochs=snakemake.params.max_epochs, batch_size=snakemake.params.batch_size,
              device=snakemake.params.device, threads=snakemake.threads,
              init_checkpoint=snakemake.input.init or None, freeze=list(snakemake.params.freeze),
              amp=snakemake.params.amp, selection=snakemake.params.selection,
              compile_model=snakemake.params.compile)
