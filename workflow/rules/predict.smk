# Classifying your own cutouts with trained checkpoints (config key `predict`, explained in config/README.md):
#
#   predict:
#     my_galaxies:
#       inputs: ["data/my_cutouts/*.jpeg", "data/my_catalogue.csv"]
#       models: [results/runs/sim2real/deepmerge/mmd/seed1/model.pt]
#       threshold: 0.5
#
# writes results/predictions/my_galaxies.csv (id, source, p_merger, label [, p_merger_std, p_merger_<i>])
# and my_galaxies.skipped.csv (inputs not classified, with the reason). Checkpoints of the experiment grid
# are built by the train rule when missing. Image files found by the globs at DAG time are inputs, so a new
# or changed file reruns the prediction; cutouts of catalogue CSVs are fetched into
# results/predictions/cutouts/<name>/ (kept between runs, not a Snakemake output).
import re

from deepmerge_da.predict.inputs import input_files

if PREDICT:

    rule predict:
        input:
            models=lambda w: PREDICT[w.name]["models"],
            files=lambda w: input_files(PREDICT[w.name]["inputs"]),
        output:
            csv="results/predictions/{name}.csv",
            skipped="results/predictions/{name}.skipped.csv",
        log:
            "logs/predict/{name}.log",
        benchmark:
            "benchmarks/predict/{name}.tsv"
        wildcard_constraints:
            name="|".join(re.escape(name) for name in PREDICT),
        conda:
            ENV
        threads: 2
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            inputs=lambda w: PREDICT[w.name]["inputs"],
            options=lambda w: predict_options(w.name),
            cache_dir=lambda w: f"results/predictions/cutouts/{w.name}",
        script:
            "../scripts/predict.py"
