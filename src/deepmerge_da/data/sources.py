"""Data sources that write a pair's raw source and target sets (``results/data/{pair}/raw/{domain}.h5``).

``synthetic`` is the embedded universe (:mod:`deepmerge_da.data.synthetic`): for sim2sim one set of objects
is rendered once and observed twice (PSF only -> source; PSF + sky noise -> target); for sim2real the
simulated SDSS-like mocks and the observed-like JPEG target are different objects.
"""
from __future__ import annotations

import logging

import numpy as np

from deepmerge_da.data.sdss_cutouts import NATIVE_SIZE, load_cutout_dir
from deepmerge_da.data.synthetic import (
    Sim2RealParams,
    Sim2SimParams,
    SyntheticSet,
    observe_sim2sim,
    render_sim2real_source,
    render_sim2real_target,
    render_sim2sim,
)
from deepmerge_da.io.hdf5 import ImageSet, write_image_set

log = logging.getLogger(__name__)


def _image_set(data: SyntheticSet, images: np.ndarray, description: str, params: dict, seed: int,
               units: str) -> ImageSet:
    attrs = {"filters": list(data.filters), "pixel_scale": float(data.pixel_scale), "units": units,
             "data_source": description, "config": {"params": params, "seed": seed, "meta": data.meta}}
    return ImageSet(images.astype(np.float32), data.labels.astype(np.int8), data.object_id.astype(str), attrs)


def _write(path: str, data: ImageSet, what: str) -> ImageSet:
    log.info("%s: %d images (%d mergers), filters %s -> %s", what, len(data), int(data.labels.sum()),
             data.filters, path)
    write_image_set(path, data)
    return data


def synthesize_sim2sim(params: dict, *, seed: int, threads: int = 1, source_path: str, target_path: str,
                       progress: bool = True) -> tuple[ImageSet, ImageSet]:
    """Render one set of z~2 objects and observe it twice: PSF only (source), PSF + sky noise (target)."""
    p = Sim2SimParams.from_dict(params)
    pristine = render_sim2sim(p, seed=seed, threads=threads, progress=progress)
    source_images, target_images = observe_sim2sim(pristine, p, seed=seed)
    full = p.to_dict()
    source = _image_set(pristine, source_images, "synthetic sim2sim source: pristine z~2 HST-like images "
                        "convolved with the PSF", full, seed, "nJy/pixel")
    target = _image_set(pristine, target_images, "synthetic sim2sim target: the same objects with the PSF "
                        "and sky shot noise (5 sigma = 25 mag/arcsec^2)", full, seed, "nJy/pixel")
    return _write(source_path, source, "sim2sim source"), _write(target_path, target, "sim2sim target")


def synthesize_sim2real(domain: str, params: dict, *, seed: int, threads: int = 1, path: str,
                        progress: bool = True) -> ImageSet:
    """Render the sim2real source (SDSS-like mocks) or target (SDSS-like JPEG cutouts, other objects)."""
    p = Sim2RealParams.from_dict(params)
    if domain == "source":
        mocks = render_sim2real_source(p, seed=seed, threads=threads, progress=progress)
        if p.source_rendering == "skyserver":
            data = _image_set(mocks, mocks.images, "synthetic sim2real source: z~0 galaxies rendered as SkyServer "
                              "cutouts (seeing, SDSS depth, field stars, asinh RGB, JPEG; g, r, i)", p.to_dict(),
                              seed, "8-bit JPEG counts")
        else:
            data = _image_set(mocks, mocks.images, "synthetic sim2real source: z~0 SDSS-like mocks (g, r, i) with "
                              "dust, PSF and Gaussian sky noise", p.to_dict(), seed, "nJy/pixel")
    elif domain == "target":
        # Another seed: real galaxies are not the simulated ones.
        observed = render_sim2real_target(p, seed=seed + 1, threads=threads, progress=progress)
        data = _image_set(observed, observed.images, "synthetic sim2real target: SDSS-like 8-bit asinh RGB "
                          "JPEG cutouts (R, G, B = i, r, g)", p.to_dict(), seed + 1, "8-bit JPEG counts")
    else:
        raise ValueError(f"unknown domain {domain!r}; choose source or target")
    return _write(path, data, f"sim2real {domain}")


def import_cutouts(cutout_dir: str, *, path: str, max_nonmergers: int | None = None, seed: int = 0,
                   size: int | None = None) -> ImageSet:
    """Real SDSS cutouts from a directory laid out as the fetch rule writes it -> the raw sim2real target.

    Post-mergers (Darg et al. stage 3) and Galaxy Zoo non-mergers; empty, blank, truncated or non-JPEG files
    are rejected and listed in the log, never used. Images keep their native size unless ``size`` is given
    (the prepare step resizes them to the network input like every other source).
    """
    cut = load_cutout_dir(cutout_dir, size=size or NATIVE_SIZE, max_nonmergers=max_nonmergers, seed=seed)
    for name, reason in cut.rejected:
        log.warning("rejected %s: %s", name, reason)
    attrs = {"filters": list(cut.filters), "pixel_scale": float(cut.pixel_scale), "units": "8-bit JPEG counts",
             "data_source": f"real SDSS cutouts (Galaxy Zoo; Darg et al. 2010 post-mergers) from {cut.source}",
             "config": {"cutout_dir": str(cutout_dir), "max_nonmergers": max_nonmergers, "seed": seed,
                        "rejected": [list(r) for r in cut.rejected]}}
    data = ImageSet(cut.images.astype(np.float32), cut.labels.astype(np.int8), cut.object_id.astype(str), attrs)
    return _write(path, data, "sim2real target (real SDSS)")
