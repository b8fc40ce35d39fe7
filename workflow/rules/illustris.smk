# The source domain from the Illustris simulation, through its public web API (data.pairs.<pair>.source:
# illustris; nothing here is defined otherwise; every key is explained in config/README.md, "data.illustris").
# The personal API key is read from the environment variable ILLUSTRIS_API_KEY by the package, never from the
# config: it appears in no param, log or output. Per pair, into ILLUSTRIS_DIR (src/deepmerge_da/data/illustris.py):
#
#   illustris_catalogue        the snapshot list and the snapshot's subhalos above the stellar-mass cut
#   illustris_merger_histories each subhalo's SubLink merger tree -> merger / non-merger (the paper's window)
#   illustris_images           each labelled subhalo's SUNRISE broadband FITS file (the cameras, the pair's filters)
#   import_illustris_<pair>    every camera view observed as the pair's synthetic images are -> raw HDF5 set(s)
#
# The downloads (api/, trees/, images/) are not Snakemake outputs (Snakemake would delete them on failure): a
# failed or killed fetch keeps every valid file and its manifest, and a rerun requests only the others (after a
# killed run, `snakemake --unlock` first). fetched.json, written last, marks complete image downloads.
ILLUSTRIS = config["data"]["illustris"]
ILLUSTRIS_PAIRS = [p for p, d in config["data"]["pairs"].items() if d["source"] == "illustris"]
ILLUSTRIS_DIR = "results/data/illustris/{pair}"
# data.illustris's request options given; IllustrisApi's defaults apply to the others
ILLUSTRIS_API = given(
    ILLUSTRIS,
    "base_url",
    "simulation",
    "concurrency",
    "rate_per_s",
    "timeout_s",
    "max_retries",
    "backoff_s",
    "max_fail_fraction",
    "allow_redirect_hosts",
)


if ILLUSTRIS_PAIRS:

    rule illustris_catalogue:
        output:
            catalogue=f"{ILLUSTRIS_DIR}/catalogue.csv",
            snapshots=f"{ILLUSTRIS_DIR}/snapshots.csv",
        log:
            "logs/illustris/{pair}_catalogue.log",
        wildcard_constraints:
            pair="|".join(ILLUSTRIS_PAIRS),
        conda:
            ENV
        resources:
            runtime=60,
        params:
            api=ILLUSTRIS_API,
            page_size=ILLUSTRIS["page_size"],
            # data.illustris.pairs.<pair>, the keys given: deepmerge_da.data.illustris.Selection's defaults (the
            # paper's) apply to the others
            selection=lambda w: ILLUSTRIS["pairs"].get(w.pair, {}),
        script:
            "../scripts/illustris_catalogue.py"

    rule illustris_merger_histories:
        input:
            catalogue=f"{ILLUSTRIS_DIR}/catalogue.csv",
            snapshots=f"{ILLUSTRIS_DIR}/snapshots.csv",
        output:
            f"{ILLUSTRIS_DIR}/labels.csv",
        log:
            "logs/illustris/{pair}_merger_histories.log",
        wildcard_constraints:
            pair="|".join(ILLUSTRIS_PAIRS),
        conda:
            ENV
        resources:
            runtime=240,
        params:
            api=ILLUSTRIS_API,
            selection=lambda w: ILLUSTRIS["pairs"].get(w.pair, {}),
        script:
            "../scripts/illustris_merger_histories.py"

    rule illustris_images:
        input:
            f"{ILLUSTRIS_DIR}/labels.csv",
        output:
            f"{ILLUSTRIS_DIR}/fetched.json",
        log:
            "logs/illustris/{pair}_images.log",
        wildcard_constraints:
            pair="|".join(ILLUSTRIS_PAIRS),
        conda:
            ENV
        resources:
            runtime=240,
        params:
            api=ILLUSTRIS_API,
            selection=lambda w: ILLUSTRIS["pairs"].get(w.pair, {}),
            synthetic=lambda w: config["data"]["pairs"][w.pair]["synthetic"],
        script:
            "../scripts/illustris_images.py"


if "sim2sim" in ILLUSTRIS_PAIRS:

    rule import_illustris_sim2sim:
        input:
            labels="results/data/illustris/sim2sim/labels.csv",
            fetched="results/data/illustris/sim2sim/fetched.json",
        output:
            source="results/data/sim2sim/raw/source.h5",
            target="results/data/sim2sim/raw/target.h5",
        log:
            "logs/import/illustris_sim2sim.log",
        benchmark:
            "benchmarks/import/illustris_sim2sim.tsv"
        conda:
            ENV
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            pair="sim2sim",
            selection=ILLUSTRIS["pairs"].get("sim2sim", {}),
            synthetic=config["data"]["pairs"]["sim2sim"]["synthetic"],
            seed=config["data"]["seed"],
        script:
            "../scripts/import_illustris.py"


if "sim2real" in ILLUSTRIS_PAIRS:

    rule import_illustris_sim2real:
        input:
            labels="results/data/illustris/sim2real/labels.csv",
            fetched="results/data/illustris/sim2real/fetched.json",
        output:
            source="results/data/sim2real/raw/source.h5",
        log:
            "logs/import/illustris_sim2real.log",
        benchmark:
            "benchmarks/import/illustris_sim2real.tsv"
        conda:
            ENV
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            pair="sim2real",
            selection=ILLUSTRIS["pairs"].get("sim2real", {}),
            synthetic=config["data"]["pairs"]["sim2real"]["synthetic"],
            seed=config["data"]["seed"],
        script:
            "../scripts/import_illustris.py"
