# Data: a raw set per pair and domain (from the synthetic universe or real cutouts), then the
# prepared, split HDF5 file that training reads.


rule synthesize:
    output:
        source="results/data/{pair}/raw/source.h5",
        target="results/data/{pair}/raw/target.h5",
    params:
        synthetic=lambda w: config["data"]["pairs"][w.pair]["synthetic"],
        seed=config["data"]["seed"],
    log:
        "logs/synthesize/{pair}.log",
    benchmark:
        "benchmarks/synthesize/{pair}.tsv"
    threads: config["resources"].get("synthesize_threads", 2)
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/synthesize.py"


rule prepare:
    input:
        "results/data/{pair}/raw/{domain}.h5",
    output:
        "results/data/{pair}/{domain}.h5",
    params:
        filters=lambda w: config["data"]["pairs"][w.pair]["filters"],
        image_size=config["data"]["image_size"],
        fractions=config["data"]["split_fractions"],
        n_per_class=lambda w: config["data"]["pairs"][w.pair].get("n_per_class"),
        seed=config["data"]["seed"],
    log:
        "logs/prepare/{pair}_{domain}.log",
    benchmark:
        "benchmarks/prepare/{pair}_{domain}.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/prepare.py"
