# Data: a raw set per pair and domain (from the synthetic universe, real cutouts, the authors' published
# arrays or the Illustris API), then the prepared, split HDF5 file that training reads. The download rules
# (data.pairs.sim2real.source: remote, data.pairs.<pair>.source: published) are in fetch.smk, those of
# data.pairs.<pair>.source: illustris in illustris.smk.

# Each pair's data source (None for a pair without data.pairs.<pair>: nothing of it is made).
SIM2SIM_SOURCE = config["data"]["pairs"].get("sim2sim", {}).get("source")
SIM2REAL_SOURCE = config["data"]["pairs"].get("sim2real", {}).get("source")
# Where the remote sim2real target is fetched to, laid out as a local cutout directory (fetch.smk).
SDSS_FETCH_DIR = "results/data/sdss"


if SIM2SIM_SOURCE == "synthetic":

    rule synthesize_sim2sim:
        output:
            source="results/data/sim2sim/raw/source.h5",
            target="results/data/sim2sim/raw/target.h5",
        log:
            "logs/synthesize/sim2sim.log",
        benchmark:
            "benchmarks/synthesize/sim2sim.tsv"
        conda:
            ENV
        threads: config["resources"]["synthesize_threads"]
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            synthetic=lambda w: config["data"]["pairs"]["sim2sim"]["synthetic"],
            seed=config["data"]["seed"],
        script:
            "../scripts/synthesize_sim2sim.py"


# The source is synthetic and the target may be real; or (illustris) the target is synthetic.
if SIM2REAL_SOURCE in ("synthetic", "local", "remote", "illustris"):

    rule synthesize_sim2real:
        output:
            "results/data/sim2real/raw/{domain}.h5",
        log:
            "logs/synthesize/sim2real_{domain}.log",
        benchmark:
            "benchmarks/synthesize/sim2real_{domain}.tsv"
        wildcard_constraints:
            domain={"synthetic": "source|target", "illustris": "target"}.get(SIM2REAL_SOURCE, "source"),
        conda:
            ENV
        threads: config["resources"]["synthesize_threads"]
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            synthetic=lambda w: config["data"]["pairs"]["sim2real"]["synthetic"],
            seed=config["data"]["seed"],
        script:
            "../scripts/synthesize_sim2real.py"


if SIM2REAL_SOURCE in ("local", "remote"):

    # Real SDSS cutouts -> the raw sim2real target: from data.sdss.cutout_dir (local), or from the
    # directory that fetch_sdss_cutouts fills (remote; its selection is already the non-merger subset).
    rule import_sdss_cutouts:
        input:
            f"{SDSS_FETCH_DIR}/fetched.json" if SIM2REAL_SOURCE == "remote" else [],
        output:
            "results/data/sim2real/raw/target.h5",
        log:
            "logs/import/sdss_cutouts.log",
        benchmark:
            "benchmarks/import/sdss_cutouts.tsv"
        conda:
            ENV
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            cutout_dir=(
                (lambda w, input: str(Path(input[0]).parent))
                if SIM2REAL_SOURCE == "remote"
                else config["data"]["sdss"]["cutout_dir"]
            ),
            max_nonmergers=None if SIM2REAL_SOURCE == "remote" else config["data"]["sdss"]["max_nonmergers"],
            seed=config["data"]["seed"],
        script:
            "../scripts/import_cutouts.py"


rule prepare:
    input:
        "results/data/{pair}/raw/{domain}.h5",
    output:
        "results/data/{pair}/{domain}.h5",
    log:
        "logs/prepare/{pair}_{domain}.log",
    benchmark:
        "benchmarks/prepare/{pair}_{domain}.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        filters=lambda w: config["data"]["pairs"][w.pair]["filters"],
        image_size=config["data"]["image_size"],
        fractions=config["data"]["split_fractions"],
        n_per_class=lambda w: config["data"]["pairs"][w.pair]["n_per_class"],
        seed=config["data"]["seed"],
    script:
        "../scripts/prepare.py"
