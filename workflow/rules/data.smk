# Data: a raw set per pair and domain (from the synthetic universe or real cutouts), then the
# prepared, split HDF5 file that training reads.


rule synthesize_sim2sim:
    output:
        source="results/data/sim2sim/raw/source.h5",
        target="results/data/sim2sim/raw/target.h5",
    params:
        synthetic=lambda w: config["data"]["pairs"]["sim2sim"]["synthetic"],
        seed=config["data"]["seed"],
    log:
        "logs/synthesize/sim2sim.log",
    benchmark:
        "benchmarks/synthesize/sim2sim.tsv"
    threads: config["resources"].get("synthesize_threads", 2)
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/synthesize_sim2sim.py"


rule synthesize_sim2real:
    output:
        "results/data/sim2real/raw/{domain}.h5",
    wildcard_constraints:
        domain=sim2real_synthetic_domains(),
    params:
        synthetic=lambda w: config["data"]["pairs"]["sim2real"]["synthetic"],
        seed=config["data"]["seed"],
    log:
        "logs/synthesize/sim2real_{domain}.log",
    benchmark:
        "benchmarks/synthesize/sim2real_{domain}.tsv"
    threads: config["resources"].get("synthesize_threads", 2)
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/synthesize_sim2real.py"


if sim2real_synthetic_domains() == "source":

    rule import_sdss_cutouts:
        output:
            "results/data/sim2real/raw/target.h5",
        params:
            cutout_dir=config["data"].get("sdss", {}).get("cutout_dir"),
            max_nonmergers=config["data"].get("sdss", {}).get("max_nonmergers"),
            seed=config["data"]["seed"],
        log:
            "logs/import/sdss_cutouts.log",
        benchmark:
            "benchmarks/import/sdss_cutouts.tsv"
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            ENV
        script:
            "../scripts/import_cutouts.py"


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
