from deepmerge_da.io.rulelog import rule_logging
from deepmerge_da.report.realism import real_sets, synthetic_sets, write_realism_report

params = snakemake.params
with rule_logging(snakemake.log[0]):
    sets, notes = real_sets(params.cutout_dir, max_nonmergers=params.max_nonmergers, seed=params.seed)
    sets.update(synthetic_sets(dict(params.synthetic), seed=params.seed, n_objects=params.n_synthetic,
                               source_path=snakemake.input.source, threads=snakemake.threads))
    description = (f"real: SDSS cutouts, dataset '{params.dataset}' (data.sdss.cutout_dir); synthetic source: this "
                   f"run's sim2real source (data seed {params.seed}, up to its first {params.n_synthetic}); target: "
                   f"{params.n_synthetic} objects of the synthetic SDSS-like target (seed {params.seed + 1})")
    write_realism_report(sets, snakemake.output[0].rsplit("/", 1)[0], description, notes)
