from deepmerge_da.data.fetch import fetch_cutout_dir
from deepmerge_da.io.rulelog import rule_logging

with rule_logging(snakemake.log[0]):
    p = snakemake.params
    # fetched.json (snakemake.output[0], in out_dir) is written last: it marks a complete fetch; the cutouts and
    # manifest.csv stay when the fetch fails
    options = dict(p.options)  # data.remote.sdss: fetch_cutouts' options, its cutout side named size
    if "size" in options:
        options["width"] = options["height"] = options.pop("size")
    fetch_cutout_dir(snakemake.input.selection, p.out_dir, catalogue_files=snakemake.input.catalogues, **options)
