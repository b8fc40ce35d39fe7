"""The synthetic universe's sets: the process pool that renders objects in chunks, labels, object ids, the
:class:`SyntheticSet` container and the public ``render_*`` / :func:`observe_sim2sim` entry points."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deepmerge_da.data import observe
from deepmerge_da.data.observe import AB_ZEROPOINT_NJY
from deepmerge_da.data.synthetic.morphology import _MERGER_TYPES, _MORPHS
from deepmerge_da.data.synthetic.parameters import Sim2RealParams, Sim2SimParams
from deepmerge_da.data.synthetic.random_streams import (
    _STREAM_LABELS,
    _STREAM_SIM2REAL_SOURCE,
    _STREAM_SIM2REAL_TARGET,
    _STREAM_SIM2SIM,
    _STREAM_SIM2SIM_NOISE,
)
from deepmerge_da.data.synthetic.sim2real import (
    _SIM2REAL_SOURCE_CATALOG,
    _SIM2REAL_TARGET_CATALOG,
    _sim2real_source_object,
    _sim2real_target_object,
)
from deepmerge_da.data.synthetic.sim2sim import _SIM2SIM_CATALOG, _sim2sim_object

GENERATOR_VERSION = "1.0"


@dataclass
class SyntheticSet:
    """Rendered images with labels and ids.

    images: (N, 3, H, W) float32 (nJy/pixel) or uint8 (JPEG-decoded RGB); labels: (N,) int8,
    1 = merger; object_id: (N,) int64, unique (encodes dataset, seed and index); filters: band
    order; pixel_scale: arcsec/pixel; meta: JSON-serialisable description (units, PSF, sigma, seed,
    parameters); catalog: per-object truth (dict of (N,) or (N, 3) arrays).
    """

    images: np.ndarray
    labels: np.ndarray
    object_id: np.ndarray
    filters: tuple
    pixel_scale: float
    meta: dict = field(default_factory=dict)
    catalog: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


_OBJECT_FUNCS: dict[str, Callable] = {
    "sim2sim": _sim2sim_object,
    "sim2real_source": _sim2real_source_object,
    "sim2real_target": _sim2real_target_object,
}
_CATALOGS = {"sim2sim": _SIM2SIM_CATALOG, "sim2real_source": _SIM2REAL_SOURCE_CATALOG,
             "sim2real_target": _SIM2REAL_TARGET_CATALOG}
_ID_CODE = {"sim2sim": 1, "sim2real_source": 2, "sim2real_target": 3}


def _start_method() -> str:
    """Multiprocessing start method: ``$DEEPMERGE_MP_START`` if set, else 'fork' where available.

    'fork' starts workers in milliseconds and, unlike 'spawn'/'forkserver', does not re-import the
    caller's ``__main__`` (Snakemake ``script:`` files, notebooks and unguarded scripts work).  The
    workers only run numpy/scipy/GalSim/astropy code (no torch, no OpenMP regions), so the usual
    fork-after-threads hazard does not bite; set DEEPMERGE_MP_START=spawn to be strict (the caller
    then needs an ``if __name__ == "__main__":`` guard).  Results are identical either way.
    """
    import multiprocessing as mp

    env = os.environ.get("DEEPMERGE_MP_START")
    if env:
        return env
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def _render_chunk(task):
    kind, params, seed, indices, labels = task
    fn = _OBJECT_FUNCS[kind]
    imgs, infos = [], []
    for i, lab in zip(indices, labels, strict=True):
        im, info = fn(params, seed, int(i), int(lab))
        imgs.append(im)
        infos.append(info)
    return indices, np.stack(imgs), infos


def _make_labels(n_m: int, n_nm: int, seed: int, stream: int) -> np.ndarray:
    labels = np.concatenate([np.ones(n_m, np.int8), np.zeros(n_nm, np.int8)])
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(_STREAM_LABELS, int(stream))))
    return labels[rng.permutation(labels.size)]


def _object_ids(kind: str, seed: int, n: int) -> np.ndarray:
    """id = dataset_code * 1e15 + (seed mod 1e8) * 1e7 + index: unique within and across sets."""
    if n >= 10**7:
        raise ValueError("at most 1e7 objects per set")
    return (np.int64(_ID_CODE[kind]) * np.int64(10**15) + np.int64(int(seed) % 10**8) * np.int64(10**7)
            + np.arange(n, dtype=np.int64))


def _run(kind: str, params, seed: int, labels: np.ndarray, threads: int, progress: bool, dtype):
    import tqdm

    n = labels.size
    indices = np.arange(n)
    threads = max(1, int(threads or 1))
    chunk = max(1, min(64, math.ceil(n / (threads * 8))))
    tasks = [(kind, params, int(seed), indices[a:a + chunk], labels[a:a + chunk]) for a in range(0, n, chunk)]
    images = None
    infos: list = [None] * n
    bar = tqdm.tqdm(total=n, desc=f"render {kind}", unit="gal", disable=not progress, leave=False)

    def place(res):
        nonlocal images
        idx, ims, inf = res
        if images is None:
            images = np.empty((n,) + ims.shape[1:], dtype=dtype)
        images[idx] = ims
        for i, d in zip(idx, inf, strict=True):
            infos[int(i)] = d
        bar.update(len(idx))

    try:
        if threads == 1 or len(tasks) == 1:
            for t in tasks:
                place(_render_chunk(t))
        else:
            import multiprocessing as mp

            ctx = mp.get_context(_start_method())
            saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
            for k in saved:
                os.environ[k] = "1"
            try:
                with ctx.Pool(processes=min(threads, len(tasks))) as pool:
                    for res in pool.imap_unordered(_render_chunk, tasks):
                        place(res)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    finally:
        bar.close()
    catalog = {}
    for key, (dt, default) in _CATALOGS[kind].items():
        vals = [d.get(key, default) for d in infos]
        if any(np.ndim(v) > 0 for v in vals):
            vals = [np.broadcast_to(np.asarray(v, dtype=float), (3,)) for v in vals]
        catalog[key] = np.asarray(vals).astype(dt)
    return images, catalog


def _check_seed(seed) -> int:
    seed = int(seed)
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return seed


def render_sim2sim(params: Sim2SimParams | dict | None = None, seed: int = 0, threads: int = 1,
                   progress: bool = True) -> SyntheticSet:
    """Render the z~2 sim2sim universe: PRISTINE images (pixel-integrated, before PSF), nJy/pixel,
    bands (F814W, F356W, F160W).  Use :func:`observe_sim2sim` for the paper's source/target."""
    P = params if isinstance(params, Sim2SimParams) else Sim2SimParams.from_dict(params)
    seed = _check_seed(seed)
    labels = _make_labels(P.n_mergers, P.n_nonmergers, seed, _STREAM_SIM2SIM)
    images, catalog = _run("sim2sim", P, seed, labels, threads, progress, np.float32)
    sigma = P.sky_sigma()
    meta = {
        "dataset": "sim2sim",
        "domain": "pristine (before PSF)",
        "units": "nJy/pixel",
        "ab_zeropoint_njy": AB_ZEROPOINT_NJY,
        "stage": "pixel-integrated light, no PSF, no noise; observe_sim2sim() gives the PSF-convolved source and "
                 "noisy target",
        "filters": list(P.filters),
        "pixel_scale_arcsec": P.pixel_scale,
        "kpc_per_pixel": P.kpc_per_pixel,
        "redshift": P.redshift,
        "psf_fwhm_arcsec": list(P.psf_fwhm_arcsec),
        "psf_model": "circular Gaussian (observe.convolve_psf)",
        "target_sky_sigma_njy": sigma.tolist(),
        "limiting_sb_mag_arcsec2": P.limiting_sb_mag,
        "limiting_sb_nsigma": P.limiting_sb_nsigma,
        "labels": {"1": "merger", "0": "non-merger"},
        "seed": seed,
        "generator": f"deepmerge_da.data.synthetic {GENERATOR_VERSION}",
        "catalog_codes": {"merger_type": list(_MERGER_TYPES), "morphology": list(_MORPHS)},
        "params": P.to_dict(),
    }
    return SyntheticSet(images, labels, _object_ids("sim2sim", seed, labels.size), tuple(P.filters), P.pixel_scale,
                        meta, catalog)


def observe_sim2sim(sset: SyntheticSet, params: Sim2SimParams | dict | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) float32 arrays of the paper's sim2sim pair from pristine images.

    source = PSF-convolved pristine images; target = source + Gaussian sky noise with the per-band
    sigma of :meth:`Sim2SimParams.sky_sigma` (5 sigma = 25 mag/arcsec^2).  The noise of each object
    is seeded by (seed, object_id), so it does not depend on which other objects are in the set.
    """
    P = params if isinstance(params, Sim2SimParams) else Sim2SimParams.from_dict(params)
    seed = _check_seed(seed)
    source = observe.convolve_psf(sset.images, P.psf_fwhm_arcsec, P.pixel_scale)
    sigma = P.sky_sigma()
    target = np.empty_like(source)
    for i, oid in enumerate(np.asarray(sset.object_id)):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM_SIM2SIM_NOISE, int(oid))))
        target[i] = observe.add_sky_noise(source[i], sigma, rng)
    return source, target


def render_sim2real_source(params: Sim2RealParams | dict | None = None, seed: int = 0, threads: int = 1,
                           progress: bool = True) -> SyntheticSet:
    """Render Illustris-like z~0 SDSS mocks: (g, r, i), 0.24 kpc/px, dust, 1 kpc Gaussian PSF and
    Gaussian noise (average S/N 25), float32 nJy/pixel; post-mergers (label 1) vs non-mergers."""
    P = params if isinstance(params, Sim2RealParams) else Sim2RealParams.from_dict(params)
    seed = _check_seed(seed)
    n_m = P.source_n_mergers
    labels = _make_labels(n_m, P.source_n_objects - n_m, seed, _STREAM_SIM2REAL_SOURCE)
    images, catalog = _run("sim2real_source", P, seed, labels, threads, progress, np.float32)
    meta = {
        "dataset": "sim2real",
        "domain": "source (simulated z~0 mocks)",
        "units": "nJy/pixel",
        "ab_zeropoint_njy": AB_ZEROPOINT_NJY,
        "filters": list(P.source_filters),
        "pixel_scale_arcsec": P.source_pixel_scale,
        "pixel_scale_kpc": P.source_pixel_scale_kpc,
        "redshift": P.source_redshift,
        "psf_fwhm_kpc": P.source_psf_fwhm_kpc,
        "psf_fwhm_arcsec": P.source_psf_fwhm_kpc / P.source_kpc_per_arcsec,
        "noise": "Gaussian, per object and band: sigma = mean body signal within snr_aperture_re*Re / S/N",
        "snr_median": P.source_snr,
        "rendering": P.source_rendering,
        "labels": {"1": "post-merger", "0": "non-merger"},
        "seed": seed,
        "generator": f"deepmerge_da.data.synthetic {GENERATOR_VERSION}",
        "catalog_codes": {"merger_type": list(_MERGER_TYPES), "morphology": list(_MORPHS)},
        "params": P.to_dict(),
    }
    pixel_scale = P.source_pixel_scale
    if P.source_rendering == "skyserver":
        pixel_scale = P.target_pixel_scale * P.source_cutout_pixels / P.image_size
        meta.update(domain="source (simulated galaxies rendered as SkyServer cutouts)",
                    units="8-bit JPEG counts of Lupton asinh RGB, (g, r, i) order", pixel_scale_arcsec=pixel_scale,
                    redshift=list(P.source_redshift_range), psf_fwhm_arcsec=list(P.source_seeing_fwhm_arcsec),
                    noise="Gaussian sky noise for the SDSS depth source_depth_mag")
        for key in ("pixel_scale_kpc", "psf_fwhm_kpc", "snr_median"):
            meta.pop(key)
    return SyntheticSet(images, labels, _object_ids("sim2real_source", seed, labels.size), tuple(P.source_filters),
                        pixel_scale, meta, catalog)


def render_sim2real_target(params: Sim2RealParams | dict | None = None, seed: int = 0, threads: int = 1,
                           progress: bool = True) -> SyntheticSet:
    """Render SDSS-like observed cutouts of *different* objects: 8-bit Lupton asinh RGB (R,G,B =
    i,r,g) at 0.396\"/px, JPEG-compressed and decoded, uint8 (N, 3, H, W); field stars and
    neighbours in both classes; post-mergers mostly show two bright cores."""
    P = params if isinstance(params, Sim2RealParams) else Sim2RealParams.from_dict(params)
    seed = _check_seed(seed)
    n_m = P.target_n_mergers
    labels = _make_labels(n_m, P.target_n_objects - n_m, seed, _STREAM_SIM2REAL_TARGET)
    images, catalog = _run("sim2real_target", P, seed, labels, threads, progress, np.uint8)
    sigma = observe.point_source_depth_sigma(P.target_depth_mag, P.target_psf_fwhm_arcsec, P.target_pixel_scale)
    meta = {
        "dataset": "sim2real",
        "domain": "target (SDSS-like observed)",
        "units": "uint8 JPEG-decoded Lupton asinh RGB of nanomaggy images",
        "channels": "R,G,B = i,r,g",
        "filters": list(P.target_filters),
        "pixel_scale_arcsec": P.target_pixel_scale,
        "psf_fwhm_arcsec": list(P.target_psf_fwhm_arcsec),
        "sky_sigma_njy": np.asarray(sigma).tolist(),
        "lupton": {"stretch": P.lupton_stretch, "Q": P.lupton_q, "minimum": P.lupton_minimum,
                   "band_scales": list(P.lupton_band_scales)},
        "jpeg_quality": P.jpeg_quality,
        "labels": {"1": "post-merger", "0": "non-merger"},
        "seed": seed,
        "generator": f"deepmerge_da.data.synthetic {GENERATOR_VERSION}",
        "catalog_codes": {"merger_type": list(_MERGER_TYPES), "morphology": list(_MORPHS)},
        "params": P.to_dict(),
    }
    return SyntheticSet(images, labels, _object_ids("sim2real_target", seed, labels.size), tuple(P.target_filters),
                        P.target_pixel_scale, meta, catalog)
