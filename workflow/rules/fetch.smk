# Downloads (nothing here is defined by default; every key is explained in config/README.md):
#
# * data.pairs.sim2real.source: remote -- the real sim2real target from the internet: the Darg et al.
#   (2010) merger catalogue and the Galaxy Zoo 1 non-merger table (fetch_catalogues), the paper's
#   selection (select_sdss_objects), one SDSS SkyServer JPEG cutout per object (fetch_sdss_cutouts) into
#   SDSS_FETCH_DIR, laid out as a local cutout directory; import_sdss_cutouts (data.smk) reads it.
#   The cutout directory is not a Snakemake output (Snakemake would delete it on failure): a failed or
#   killed fetch keeps every valid cutout and its manifest.csv, and a rerun requests only the others.
#   fetched.json, written last, marks a complete fetch (with the catalogues' SHA-256). `deepmerge-da fetch` makes
#   the same directory by hand (src/deepmerge_da/data/fetch.py: fetch_cutout_dir).
# * data.pairs.<pair>.source: published -- the authors' prepared arrays (DeepMerge II, Zenodo record
#   doi:10.5281/zenodo.4507941; DeepMerge I, MAST HLSP "deepmerge"), files listed with their URLs and
#   SHA-256 in data.published.files, downloaded and verified (fetch_published_images) and converted
#   (import_published_images) into results/data/{pair}/raw/{domain}.h5.
# data.pairs.<pair>.source: illustris -- the Illustris web API -- is in illustris.smk.
import re

REMOTE = config["data"]["remote"]
REMOTE_CATALOGUES = REMOTE["catalogues"]
DARG_FILE = f"{SDSS_FETCH_DIR}/darg_mergers.{REMOTE_CATALOGUES['darg_format']}"
GZ1_FILE = f"{SDSS_FETCH_DIR}/nonmergers.{REMOTE_CATALOGUES['gz1_format']}"

PUBLISHED = config["data"]["published"]
PUBLISHED_FILES = {f["name"]: f for f in PUBLISHED["files"]}
PUBLISHED_PAIRS = [p for p, d in config["data"]["pairs"].items() if d["source"] == "published"]


if SIM2REAL_SOURCE == "remote":

    rule fetch_catalogues:
        output:
            darg=DARG_FILE,
            gz1=GZ1_FILE,
        log:
            "logs/fetch/catalogues.log",
        conda:
            ENV
        resources:
            runtime=30,
        params:
            darg_url=REMOTE_CATALOGUES["darg_url"],
            darg_sha256=REMOTE_CATALOGUES["darg_sha256"],
            gz1_url=REMOTE_CATALOGUES["gz1_url"],
            gz1_sha256=REMOTE_CATALOGUES["gz1_sha256"],
            allow_redirect_hosts=REMOTE_CATALOGUES["allow_redirect_hosts"],
        script:
            "../scripts/fetch_catalogues.py"

    rule select_sdss_objects:
        input:
            darg=DARG_FILE,
            gz1=GZ1_FILE,
        output:
            f"{SDSS_FETCH_DIR}/selection.csv",
        log:
            "logs/fetch/select_sdss_objects.log",
        conda:
            ENV
        params:
            # n_nonmergers when given, else build_selection's default (the paper's)
            options=given(REMOTE, "n_nonmergers"),
            seed=config["data"]["seed"],
            darg_columns=REMOTE_CATALOGUES["darg_columns"],
            gz1_columns=REMOTE_CATALOGUES["gz1_columns"],
        script:
            "../scripts/select_sdss_objects.py"

    rule fetch_sdss_cutouts:
        input:
            selection=f"{SDSS_FETCH_DIR}/selection.csv",
            catalogues=[DARG_FILE, GZ1_FILE],
        output:
            f"{SDSS_FETCH_DIR}/fetched.json",
        log:
            "logs/fetch/sdss_cutouts.log",
        conda:
            ENV
        resources:
            runtime=240,
        params:
            out_dir=lambda w, output: str(Path(output[0]).parent),
            # the data.remote.sdss options given; fetch_cutouts' defaults apply to the others
            options=REMOTE["sdss"],
        script:
            "../scripts/fetch_sdss_cutouts.py"


if PUBLISHED_FILES:

    rule fetch_published_images:
        output:
            "results/data/published/{name}",
        log:
            "logs/fetch/published_{name}.log",
        wildcard_constraints:
            name="|".join(map(re.escape, PUBLISHED_FILES)),
        conda:
            ENV
        resources:
            runtime=120,
        params:
            url=lambda w: PUBLISHED_FILES[w.name]["url"],
            sha256=lambda w: PUBLISHED_FILES[w.name]["sha256"],
        script:
            "../scripts/fetch_published_images.py"


if PUBLISHED_PAIRS:

    rule import_published_images:
        input:
            unpack(
                lambda w: {
                    k: f"results/data/published/{v}"
                    for k, v in PUBLISHED["sets"][w.pair][w.domain].items()
                    if k in ("images", "labels", "fits")
                }
            ),
        output:
            "results/data/{pair}/raw/{domain}.h5",
        log:
            "logs/import/published_{pair}_{domain}.log",
        benchmark:
            "benchmarks/import/published_{pair}_{domain}.tsv"
        wildcard_constraints:
            pair="|".join(PUBLISHED_PAIRS),
        conda:
            ENV
        resources:
            mem_mb=8000,
            runtime=30,
        params:
            filters=lambda w: PUBLISHED["sets"][w.pair][w.domain].get(
                "filters", config["data"]["pairs"][w.pair]["filters"]
            ),
            # pixel_scale, units and layout when given, else import_published's defaults
            options=lambda w: given(PUBLISHED["sets"][w.pair][w.domain], "pixel_scale", "units", "layout"),
        script:
            "../scripts/import_published_images.py"
