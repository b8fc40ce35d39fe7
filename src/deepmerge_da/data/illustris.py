"""The simulated source domain rebuilt from the Illustris simulation, through its public web API.

Used when ``data.pairs.<pair>.source`` is ``illustris`` (workflow/rules/illustris.smk; every key in
config/README.md, ``data.illustris``).  Four stages, each a rule, each writing into ``out_dir``
(``results/data/illustris/<pair>/``); every download goes through :class:`~.illustris_api.IllustrisApi` (key from
``ILLUSTRIS_API_KEY``, bounded concurrency and rate, retries with backoff, temporary name + rename, validation,
resume, a manifest of every object):

1. :func:`fetch_catalogue` -- the snapshot list (``GET <base>/<sim>/snapshots/``: a list of ``{"number",
   "redshift", "url"}``) -> ``snapshots.csv`` with each snapshot's cosmic time; the subhalo catalogue of the
   selection's snapshot with the stellar-mass cut, page by page (``GET .../snapshots/<n>/subhalos/?mass_stars__gt=
   <M in 1e10 Msun/h>&order_by=id&limit=<page_size>&offset=<k>``: ``{"count", "next", "previous", "results":
   [{"id", ...}]}``, until ``next`` is null) -> ``catalogue.csv``.  Both endpoints and the query syntax are those of
   the API reference (https://www.illustris-project.org/data/docs/api/).
2. :func:`fetch_merger_histories` -- for each subhalo its SubLink tree (``GET .../subhalos/<id>/sublink/full.hdf5``)
   and, when the window reaches past the snapshot (sim2sim), the subhalo details (``GET .../subhalos/<id>/``: its
   ``desc_snap``, ``desc_sfid``) of its descendants up to the window's end, whose tree then holds the future
   mergers too; labelled by :func:`deepmerge_da.data.merger_history.label_subhalo` -> ``labels.csv``.
3. :func:`fetch_images` -- each labelled subhalo's SUNRISE broadband FITS file (``GET .../subhalos/<id>/<images_path>``,
   by default ``stellar_mocks/broadband.fits``, the Illustris-1 z = 0 stellar mocks of Torrey et al. 2015), checked
   by :func:`deepmerge_da.data.sunrise.check_sunrise_fits` (complete, the cameras and filters present, finite
   square images) -> ``images/``, ``images_manifest.csv`` and last ``fetched.json``.
4. :func:`import_illustris` -- every camera view of every fetched galaxy, observed as the pair's synthetic images
   are (its ``data.pairs.<pair>.synthetic`` parameters): resampled to the pair's pixel scale, converted to
   nJy/pixel, PSF-convolved (:mod:`deepmerge_da.data.observe`); sim2sim: source = that, target = the same plus sky
   noise (as :func:`deepmerge_da.data.synthetic.observe_sim2sim`); sim2real: the source, with Gaussian noise for the
   configured S/N -> raw HDF5 sets.  All views of one galaxy share its object id (``<sim>-<snap>-<id>``), so the
   split never separates them.

Not checkable offline: that the API serves SUNRISE files at ``images_path`` for the chosen snapshot (the Illustris-1
stellar mocks are of z = 0, snapshot 135; for the paper's z = 2 images, Snyder et al. 2019, we know of no endpoint),
the FITS filter names (``fits_filters``) and whether the file's images are observed-frame (we convert them as they
are, without redshift dimming or K-correction).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from deepmerge_da.data import observe
from deepmerge_da.data.http import remove_stale_parts
from deepmerge_da.data.illustris_api import Fetched, IllustrisApi, IllustrisError
from deepmerge_da.data.merger_history import TreeError, check_sublink_tree, label_subhalo, read_sublink_tree
from deepmerge_da.data.sunrise import SunriseError, SunriseViews, check_sunrise_fits, read_views
from deepmerge_da.data.synthetic import Sim2RealParams, Sim2SimParams
from deepmerge_da.data.synthetic.cosmology import ILLUSTRIS_COSMOLOGY, age_gyr, kpc_per_arcsec
from deepmerge_da.io.atomic import atomic_path, write_text_atomic
from deepmerge_da.io.hdf5 import ImageSet, write_image_set

log = logging.getLogger(__name__)

#: The paper's selection per pair (Sec. 4): the Illustris-1 snapshot (68: z = 2.00, 135: z = 0, from the data
#: specifications' snapshot table) and the merger window around it.
PAPER_SELECTION = {
    "sim2sim": {"snapshot": 68, "window_before_gyr": 0.25, "window_after_gyr": 0.25},
    "sim2real": {"snapshot": 135, "window_before_gyr": 0.25, "window_after_gyr": 0.0},
}
#: The API's masses are in 1e10 Msun/h.
LITTLE_H = ILLUSTRIS_COSMOLOGY["H0"] / 100.0
ARCSEC_IN_RAD = np.pi / 180.0 / 3600.0
# random-stream identifiers of the noise (first element of the SeedSequence spawn key; the synthetic universe's
# are below 101, see deepmerge_da.data.synthetic.random_streams)
_STREAM_SIM2SIM_NOISE = 201
_STREAM_SIM2REAL_NOISE = 202


@dataclass(frozen=True)
class Selection:
    """Which galaxies of which snapshot, how they are labelled and which images are fetched (config
    ``data.illustris.pairs.<pair>``; :meth:`of_pair` fills in the paper's values)."""

    snapshot: int
    window_before_gyr: float
    window_after_gyr: float
    min_stellar_mass: float = 1e10  # Msun; the Illustris-1 stellar mocks exist above 1e10 Msun
    min_mass_ratio: float = 0.1  # major mergers: 1:10 or closer (the paper)
    max_subhalos: int | None = None  # the first this many of the catalogue (by id); None: all
    images_path: str = "stellar_mocks/broadband.fits"
    cameras: tuple[int, ...] = (0, 1, 2, 3)
    fits_filters: dict[str, str] = field(default_factory=dict)  # band of the pair -> name in the FITS file

    @classmethod
    def of_pair(cls, pair: str, options: dict | None = None) -> Selection:
        known = {f.name for f in fields(cls)}
        options = dict(options or {})
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"data.illustris.pairs.{pair}: unknown key {unknown[0]!r}")
        values = {**PAPER_SELECTION[pair], **options}
        values["cameras"] = tuple(int(c) for c in values.get("cameras", cls.cameras))
        values["fits_filters"] = dict(values.get("fits_filters") or {})
        return cls(**values)

    def fits_bands(self, pair: str, bands: list[str]) -> list[str]:
        """The names in the SUNRISE files of the pair's ``bands``; a ``fits_filters`` key that is none of them is an
        error (a typo would otherwise pass silently)."""
        unknown = sorted(set(self.fits_filters) - set(bands))
        if unknown:
            raise ValueError(f"data.illustris.pairs.{pair}.fits_filters: {unknown[0]!r} is not one of the bands "
                             f"{', '.join(bands)}")
        return [self.fits_filters.get(band, band) for band in bands]

    def object_id(self, simulation: str, subhalo_id: int) -> str:
        return f"{simulation}-{self.snapshot}-{int(subhalo_id)}"


def _json_check(kind: type, *keys: str):
    """A check of a JSON file: ``kind`` (dict or list) with ``keys``; None when valid, else the reason."""
    def check(path: Path) -> str | None:
        try:
            value = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError):
            return "not JSON"
        if not isinstance(value, kind):
            return f"not a JSON {kind.__name__}"
        missing = [k for k in keys if k not in value]
        return f"JSON without {', '.join(missing)}" if missing else None
    return check


def _check_subhalo(path: Path) -> str | None:
    """The subhalo details must give the SubLink descendant (``desc_snap``, ``desc_sfid``; -1: none) as integers."""
    reason = _json_check(dict, "desc_snap", "desc_sfid")(path)
    if reason is None and not all(type(_read_json(path)[k]) is int for k in ("desc_snap", "desc_sfid")):
        reason = "desc_snap or desc_sfid is not an integer"
    return reason


def _read_json(path: Path):
    return json.loads(path.read_bytes())


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _snapshot_table(api: IllustrisApi, out: Path) -> pd.DataFrame:
    """The simulation's snapshots: number, redshift and cosmic time (Gyr)."""
    path = api.fetch_one(api.url("snapshots/"), out / "api" / "snapshots.json", _json_check(list),
                         "the snapshot list")
    try:
        snaps = pd.DataFrame([(int(s["number"]), float(s["redshift"])) for s in _read_json(path)],
                             columns=["number", "redshift"]).sort_values("number")
    except (KeyError, TypeError, ValueError) as exc:
        raise IllustrisError(f"the snapshot list {path} lacks a number or redshift ({exc})") from None
    snaps["time_gyr"] = np.atleast_1d(age_gyr(np.maximum(snaps["redshift"].to_numpy(), 0.0)))
    return snaps


def _catalogue_ids(api: IllustrisApi, out: Path, sel: Selection, page_size: int) -> list[int]:
    """The ids of the snapshot's subhalos above the mass cut, page by page, until ``next`` is null (or enough)."""
    mass = sel.min_stellar_mass / 1e10 * LITTLE_H
    check_page = _json_check(dict, "results", "next")
    ids: list[int] = []
    offset = 0
    while sel.max_subhalos is None or len(ids) < sel.max_subhalos:
        query = f"mass_stars__gt={mass:.6g}&order_by=id&limit={int(page_size)}&offset={offset}"
        page_path = api.fetch_one(api.url(f"snapshots/{sel.snapshot}/subhalos/?{query}"),
                                  out / "api" / "catalogue" / f"{sel.snapshot}_{query.replace('&', '_')}.json",
                                  check_page, f"catalogue page {offset // int(page_size) + 1}")
        page = _read_json(page_path)
        try:
            ids += [int(r["id"]) for r in page["results"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise IllustrisError(f"catalogue page {page_path} has a result without an id ({exc})") from None
        if not page["next"] or not page["results"]:
            break
        offset += len(page["results"])
    return ids[:sel.max_subhalos]


def fetch_catalogue(out_dir: str | os.PathLike, *, pair: str, selection: dict | None = None, page_size: int = 100,
                    **api_options) -> pd.DataFrame:
    """Stage 1: ``snapshots.csv`` and ``catalogue.csv`` (``object_id, subhalo_id, snap``) in ``out_dir``."""
    sel = Selection.of_pair(pair, selection)
    api = IllustrisApi(**api_options)
    out = Path(out_dir)
    for directory in (out / "api", out / "api" / "catalogue"):
        remove_stale_parts(directory)  # left by a killed run
    try:
        snaps = _snapshot_table(api, out)
        _write_csv(snaps, out / "snapshots.csv")
        if sel.snapshot not in set(snaps["number"]):
            raise IllustrisError(f"snapshot {sel.snapshot} is not one of {api.simulation}'s ({len(snaps)} listed)")
        ids = _catalogue_ids(api, out, sel, page_size)
    finally:
        api.sessions.close()
    catalogue = pd.DataFrame({"object_id": [sel.object_id(api.simulation, i) for i in ids], "subhalo_id": ids,
                              "snap": sel.snapshot})
    _write_csv(catalogue, out / "catalogue.csv")
    log.info("%s snapshot %d: %d subhalos with M* > %.3g Msun", api.simulation, sel.snapshot, len(catalogue),
             sel.min_stellar_mass)
    return catalogue


def fetch_merger_histories(out_dir: str | os.PathLike, *, pair: str, selection: dict | None = None,
                           **api_options) -> pd.DataFrame:
    """Stage 2: each subhalo's merger history and label -> ``labels.csv`` and ``merger_histories_manifest.csv``."""
    sel = Selection.of_pair(pair, selection)
    api = IllustrisApi(**api_options)
    out = Path(out_dir)
    for directory in (out / "api" / "subhalos", out / "trees"):
        remove_stale_parts(directory)  # left by a killed run
    catalogue = pd.read_csv(out / "catalogue.csv", dtype={"object_id": str})
    snaps = pd.read_csv(out / "snapshots.csv")
    times = dict(zip(snaps["number"].astype(int), snaps["time_gyr"].astype(float), strict=True))
    window_end = times[sel.snapshot] + sel.window_after_gyr
    rows: dict[str, dict] = {}

    def work(oid: str, subhalo_id: int) -> Fetched:
        snap, current, attempts = sel.snapshot, int(subhalo_id), 0
        while sel.window_after_gyr > 0:  # the descendant at the window's end holds the future mergers
            res = api.fetch(api.url(f"snapshots/{snap}/subhalos/{current}/"),
                            out / "api" / "subhalos" / f"{snap}_{current}.json", _check_subhalo, oid)
            attempts += res.attempts
            if not res.usable:
                res.attempts = attempts
                return res
            detail = _read_json(out / "api" / "subhalos" / f"{snap}_{current}.json")
            desc_snap, desc_id = int(detail["desc_snap"]), int(detail["desc_sfid"])
            if desc_id < 0 or desc_snap not in times or times[desc_snap] > window_end:
                break
            snap, current = desc_snap, desc_id
        tree_path = out / "trees" / f"{snap}_{current}.hdf5"
        res = api.fetch(api.url(f"snapshots/{snap}/subhalos/{current}/sublink/full.hdf5"), tree_path,
                        check_sublink_tree, oid)
        res.attempts += attempts
        if not res.usable:
            return res
        try:
            history = label_subhalo(read_sublink_tree(tree_path), snap=sel.snapshot, subfind_id=int(subhalo_id),
                                    times_gyr=times, window_before_gyr=sel.window_before_gyr,
                                    window_after_gyr=sel.window_after_gyr, min_mass_ratio=sel.min_mass_ratio)
        except TreeError as exc:
            res.status, res.reason = "failed", str(exc)
            return res
        major = history.major
        rows[oid] = {"object_id": oid, "subhalo_id": int(subhalo_id), "snap": sel.snapshot, "label": history.label,
                     "stellar_mass_msun": history.stellar_mass * 1e10 / LITTLE_H,
                     "mergers_in_window": len(history.mergers), "major_mergers": len(major),
                     "major_merger_snaps": ";".join(str(m.snap) for m in major),
                     "max_ratio": max((m.ratio for m in history.mergers), default=np.nan),
                     "tree": f"{snap}_{current}"}
        return res

    items = list(zip(catalogue["object_id"], catalogue["subhalo_id"].astype(int), strict=True))
    results = api.run_batch(items, work, out / "merger_histories_manifest.csv", "merger histories")
    labels = pd.DataFrame([rows[r.object_id] for r in results if r.usable and r.object_id in rows])
    if labels.empty:
        raise IllustrisError(f"no subhalo of snapshot {sel.snapshot} could be labelled; see "
                             f"{out / 'merger_histories_manifest.csv'}")
    _write_csv(labels, out / "labels.csv")
    log.info("labelled %d subhalos: %d mergers (a major merger within -%.2f/+%.2f Gyr), %d non-mergers", len(labels),
             int(labels["label"].sum()), sel.window_before_gyr, sel.window_after_gyr, int((labels["label"] == 0).sum()))
    return labels


def fetch_images(out_dir: str | os.PathLike, *, pair: str, bands: list[str], selection: dict | None = None,
                 **api_options) -> dict:
    """Stage 3: each labelled subhalo's SUNRISE file -> ``images/``, ``images_manifest.csv``, last ``fetched.json``.

    ``bands``: the pair's bands in the order its images are observed (FITS names through ``fits_filters``)."""
    sel = Selection.of_pair(pair, selection)
    api = IllustrisApi(**api_options)
    out = Path(out_dir)
    remove_stale_parts(out / "images")  # left by a killed run
    labels = pd.read_csv(out / "labels.csv", dtype={"object_id": str})
    fits_bands = sel.fits_bands(pair, bands)

    def check(path: Path) -> str | None:
        return check_sunrise_fits(path, fits_bands, list(sel.cameras))

    def work(oid: str, subhalo_id: int) -> Fetched:
        return api.fetch(api.url(f"snapshots/{sel.snapshot}/subhalos/{subhalo_id}/{sel.images_path}"),
                         out / "images" / f"{sel.snapshot}_{subhalo_id}.fits", check, oid)

    items = list(zip(labels["object_id"], labels["subhalo_id"].astype(int), strict=True))
    results = api.run_batch(items, work, out / "images_manifest.csv", "images")
    failed = [r for r in results if r.status == "failed"]
    summary = {"base_url": api.base_url, "simulation": api.simulation, "snapshot": sel.snapshot,
               "images_path": sel.images_path, "cameras": list(sel.cameras),
               "fits_filters": dict(zip(bands, fits_bands, strict=True)),
               "objects": len(results), "fetched": sum(r.status == "ok" for r in results),
               "kept_existing": sum(r.status == "skipped_existing" for r in results), "failed": len(failed),
               "failure_reasons": {r.object_id: r.reason for r in failed},
               "manifest": str(out / "images_manifest.csv")}
    write_text_atomic(out / "fetched.json", json.dumps(summary, indent=1) + "\n")
    return summary


# -- observation ----------------------------------------------------------------------------------------------------

def resample(images: np.ndarray, zoom: float, size: int) -> np.ndarray:
    """(..., n, n) surface-brightness maps on pixels ``zoom`` times the size of the new ones -> (..., size, size),
    centred on the same point (bilinear; smoothed first by half a new pixel when shrinking, against aliasing; zero
    beyond the field of view)."""
    flat = np.asarray(images, dtype=np.float64).reshape((-1,) + images.shape[-2:])
    n = flat.shape[-1]
    out = np.empty((len(flat), size, size))
    offset = (n - 1) / 2 - (size - 1) / 2 / zoom
    for i, plane in enumerate(flat):
        if zoom < 1:
            plane = ndimage.gaussian_filter(plane, 0.5 / zoom, mode="constant")
        out[i] = ndimage.affine_transform(plane, np.full(2, 1 / zoom), offset=offset, output_shape=(size, size),
                                          order=1, mode="constant", cval=0.0)
    return out.reshape(images.shape[:-2] + (size, size))


def to_njy_per_pixel(views: SunriseViews, *, pixel_kpc: float, pixel_arcsec: float, size: int) -> np.ndarray:
    """The views' I_nu (Jy/sr) on pixels of ``pixel_kpc`` = ``pixel_arcsec``, ``size`` x ``size``, in nJy/pixel."""
    sb = resample(views.images, views.pixel_kpc / pixel_kpc, size)
    return sb * (pixel_arcsec * ARCSEC_IN_RAD) ** 2 * 1e9


def snr_sigma(image: np.ndarray, snr: float, aperture_re: float) -> np.ndarray:
    """Per-band noise sigma for a signal-to-noise ratio ``snr``: the mean signal of each band within a circle of
    ``aperture_re`` half-light radii (of all bands' light: the area holding its brighter half, circularised, around
    its centroid) over ``snr`` -- the synthetic sim2real source's definition, on a simulated galaxy."""
    light = np.clip(image.sum(axis=0), 0, None)
    total = light.sum()
    if total <= 0:
        return np.full(len(image), 1e-30)
    ordered = np.sort(light.ravel())[::-1]
    half_area = int(np.searchsorted(np.cumsum(ordered), total / 2)) + 1
    re = np.sqrt(half_area / np.pi)
    yy, xx = np.indices(light.shape)
    cy, cx = (light * yy).sum() / total, (light * xx).sum() / total
    aperture = (yy - cy) ** 2 + (xx - cx) ** 2 <= (aperture_re * re) ** 2
    return np.maximum(image[:, aperture].mean(axis=1), 1e-30) / snr


@dataclass(frozen=True)
class _Observation:
    """How a pair observes: bands, pixel (kpc and arcsec), image side, PSF FWHM per band (arcsec)."""

    bands: list[str]
    pixel_kpc: float
    pixel_arcsec: float
    size: int
    psf_fwhm_arcsec: np.ndarray


def observation(pair: str, params: Sim2SimParams | Sim2RealParams, redshift: float) -> _Observation:
    if pair == "sim2sim":
        # the angular scale of the snapshot's redshift (z >= 0.001: a z = 0 snapshot has none)
        return _Observation(list(params.filters), params.pixel_scale * kpc_per_arcsec(max(redshift, 1e-3)),
                            params.pixel_scale, params.image_size, np.asarray(params.psf_fwhm_arcsec, dtype=float))
    fwhm = params.source_psf_fwhm_kpc / params.source_kpc_per_arcsec
    return _Observation(list(params.source_filters), params.source_pixel_scale_kpc, params.source_pixel_scale,
                        params.image_size, np.full(len(params.source_filters), fwhm))


def observation_bands(pair: str, synthetic: dict) -> list[str]:
    """The bands of the pair's images in their observed order (sim2sim: ``filters``, sim2real: ``source_filters``)."""
    params = (Sim2SimParams if pair == "sim2sim" else Sim2RealParams).from_dict(synthetic)
    return list(params.filters if pair == "sim2sim" else params.source_filters)


def import_illustris(out_dir: str | os.PathLike, *, pair: str, synthetic: dict, seed: int, source_path: str,
                     target_path: str | None = None, selection: dict | None = None) -> tuple[ImageSet, ...]:
    """Stage 4: the fetched views, observed as the pair's ``synthetic`` parameters say -> raw HDF5 set(s).

    sim2sim writes ``source_path`` (PSF) and ``target_path`` (PSF + sky noise, 5 sigma = ``limiting_sb_mag``);
    sim2real writes ``source_path`` (PSF + Gaussian noise for ``source_snr``)."""
    sel = Selection.of_pair(pair, selection)
    out = Path(out_dir)
    params = (Sim2SimParams if pair == "sim2sim" else Sim2RealParams).from_dict(synthetic)
    fetched = _read_json(out / "fetched.json")
    snaps = pd.read_csv(out / "snapshots.csv")
    redshift = float(snaps.loc[snaps["number"] == sel.snapshot, "redshift"].iloc[0])
    obs = observation(pair, params, redshift)
    manifest = pd.read_csv(out / "images_manifest.csv", dtype={"object_id": str}, keep_default_na=False)
    usable = set(manifest.loc[manifest["status"].isin(["ok", "skipped_existing"]), "object_id"])
    labels = pd.read_csv(out / "labels.csv", dtype={"object_id": str})
    labels = labels[labels["object_id"].isin(usable)]
    if labels.empty:
        raise IllustrisError(f"no usable images of {pair}'s galaxies; see {out / 'images_manifest.csv'}")
    fits_bands = sel.fits_bands(pair, obs.bands)
    def rng(stream: int, subhalo_id: int, camera: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(stream, subhalo_id, camera)))

    # galaxy by galaxy, kept as float32: paper-scale sets hold tens of thousands of views
    source, noisy, rows = [], [], []
    for row in labels.itertuples(index=False):
        path = out / "images" / f"{sel.snapshot}_{row.subhalo_id}.fits"
        try:
            views = read_views(path, fits_bands, list(sel.cameras))
        except SunriseError as exc:  # validated when fetched: only a file changed since fails here
            raise IllustrisError(f"{path}: {exc}") from None
        pristine = to_njy_per_pixel(views, pixel_kpc=obs.pixel_kpc, pixel_arcsec=obs.pixel_arcsec, size=obs.size)
        for camera, image in zip(sel.cameras, observe.convolve_psf(pristine, obs.psf_fwhm_arcsec, obs.pixel_arcsec),
                                 strict=True):
            if pair == "sim2sim":
                noise = rng(_STREAM_SIM2SIM_NOISE, row.subhalo_id, camera)
                sigma = params.sky_sigma()
            else:
                noise = rng(_STREAM_SIM2REAL_NOISE, row.subhalo_id, camera)
                snr = params.source_snr * 10 ** (params.source_snr_scatter_dex * noise.standard_normal())
                sigma = snr_sigma(image, snr, params.snr_aperture_re)
            source.append(image)
            noisy.append(observe.add_sky_noise(image, sigma, noise))
            rows.append((row.object_id, int(row.label), camera))
    source, noisy = np.stack(source), np.stack(noisy)

    object_id = np.array([r[0] for r in rows])
    label = np.array([r[1] for r in rows], dtype=np.int8)
    provenance = {"source": "illustris", "base_url": fetched["base_url"], "simulation": fetched["simulation"],
                  "snapshot": sel.snapshot, "redshift": redshift, "selection": asdict(sel),
                  "observation": params.to_dict(), "seed": int(seed), "pixel_kpc": obs.pixel_kpc,
                  "views": [[r[0], r[2]] for r in rows], "images_manifest": str(out / "images_manifest.csv")}
    where = f"Illustris {fetched['simulation']} snapshot {sel.snapshot} (z = {redshift:.3g}), SUNRISE {sel.images_path}"

    def image_set(pixels: np.ndarray, what: str) -> ImageSet:
        attrs = {"filters": obs.bands, "pixel_scale": obs.pixel_arcsec, "units": "nJy/pixel",
                 "data_source": f"{where}: {what}", "config": provenance}
        return ImageSet(pixels, label, object_id, attrs)

    if pair == "sim2sim":
        sets = (image_set(source, "PSF-convolved"), image_set(noisy, "PSF-convolved plus sky noise (5 sigma = "
                                                              f"{params.limiting_sb_mag} mag/arcsec^2)"))
        paths = (source_path, target_path)
    else:
        sets = (image_set(noisy, f"PSF-convolved ({params.source_psf_fwhm_kpc} kpc) plus Gaussian noise "
                                 f"(S/N {params.source_snr})"),)
        paths = (source_path,)
    for data, path in zip(sets, paths, strict=True):
        log.info("%s: %d views of %d galaxies (%d mergers), filters %s -> %s", pair, len(data),
                 len(set(object_id)), int(labels["label"].sum()), obs.bands, path)
        write_image_set(path, data)
    return sets
