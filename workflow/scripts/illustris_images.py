from pathlib import Path

from deepmerge_da.data.illustris import fetch_images, observation_bands
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p, pair = snakemake.params, snakemake.wildcards.pair
    # fetched.json (snakemake.output[0]) is written last: the images and images_manifest.csv stay when it fails
    fetch_images(Path(snakemake.output[0]).parent, pair=pair, bands=observation_bands(pair, dict(p.synthetic)),
                 selection=dict(p.selection), **dict(p.api))
