"""Reading a directory of SDSS cutouts (the layout the fetch rule writes) into arrays.

Layout (``path``)::

    darg_mergers.fits | darg_mergers.csv   Darg et al. (2010); row id (1-based) names mergers/<id>.jpeg
    nonmergers.csv                         Galaxy Zoo 1 non-mergers; column ID names nonmergers/<ID>.jpeg
    mergers/<id>.jpeg, nonmergers/<ID>.jpeg
    catalogue.csv                          (optional) the selection table written by fetch_cutouts

Which catalogue is used (``catalogue``): ``"raw"`` -- the Darg rows with ``stage == 3`` and every
distinct galaxy of ``nonmergers.csv``; ``"selection"`` -- the rows of ``catalogue.csv``;
``"auto"`` (default) -- ``catalogue.csv`` when it exists, else the raw catalogues.

Every file is checked by :func:`deepmerge_da.data.jpeg.check_jpeg` (the same function the downloader
uses): empty, not-a-JPEG, truncated, corrupt, wrong-size and blank files are rejected and
reported as ``(relative path, reason)`` in ``rejected`` and with a logging warning; a missing
file is rejected as ``"missing file"``.  Image files that no catalogue row names (of the whole raw catalogues,
or of ``catalogue.csv``) are never read: they are listed in ``unlisted`` and counted in a warning.

Images are decoded by Pillow as RGB, where R, G, B are the SDSS i, r, g bands, and resized from
128 x 128 to ``size`` x ``size`` with Pillow's ``Image.resize`` and the Lanczos filter (by
default; ``resample`` may name ``bilinear``, ``bicubic``, ``box`` or ``nearest``).  Pillow scales the
filter support with the reduction factor, so downsampling is antialiased.  The pixel scale
becomes 0.396127 arcsec/px x 128 / ``size``.

Non-mergers: the local table was drawn with replacement, so one galaxy can appear under several
``ID`` values (~130 repeats; the IDs themselves are row numbers and all differ).  Galaxies are
de-duplicated by SDSS designation (column ``SDSS``; by position when absent), keeping the lowest
ID, so one galaxy is one object.  With ``max_nonmergers`` a seeded random subset of galaxies is
loaded; rejected files are replaced by the next galaxies of the same seeded permutation, so the
subset has ``max_nonmergers`` objects whenever enough valid files exist.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from deepmerge_da.data import catalogues
from deepmerge_da.data.jpeg import check_jpeg_file

log = logging.getLogger(__name__)

FILTERS = ("i", "r", "g")
NATIVE_SIZE = 128
SDSS_PIXEL_SCALE = 0.396127  # arcsec / pixel, SkyServer default
# the SkyServer cutout service the fetch rule and predict's catalogues download from
DEFAULT_BASE_URL = "https://skyserver.sdss.org/dr15/SkyServerWS/ImgCutout/getjpeg"
_RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass
class LocalCutouts:
    images: np.ndarray          # (N, 3, size, size) uint8, channels (i, r, g)
    labels: np.ndarray          # (N,) int8, 1 = merger, 0 = non-merger
    object_id: np.ndarray       # (N,) str, "darg-<id>" / "gz1-<ID>"
    ra: np.ndarray              # (N,) float64, degrees
    dec: np.ndarray             # (N,) float64, degrees
    filters: tuple[str, ...] = FILTERS
    pixel_scale: float = SDSS_PIXEL_SCALE
    rejected: list[tuple[str, str]] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # image files no catalogue row names, "mergers/<id>.jpeg"
    source: str = ""
    load_time_s: float = 0.0

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _load_one(path: Path, size: int, native: int | None, resample) -> tuple[np.ndarray | None, str | None]:
    chk = check_jpeg_file(path, (native, native) if native else None, keep_image=True)
    if not chk.ok:
        return None, chk.reason
    im = chk.image
    if im.size != (size, size):
        im = im.resize((size, size), resample=resample)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1), None


def _candidates_raw(root: Path, stage: int, merger_ids, nonmerger_ids, rejected):
    darg_path = next((p for p in (root / "darg_mergers.fits", root / "darg_mergers.csv") if p.is_file()), None)
    gz1_path = root / "nonmergers.csv"
    missing = [str(p) for p, ok in ((root / "darg_mergers.fits|.csv", darg_path is not None),
                                    (gz1_path, gz1_path.is_file())) if not ok]
    if missing:
        raise FileNotFoundError(f"cutout directory {root} lacks its catalogue files: {', '.join(missing)} "
                                f"(expected darg_mergers.fits or darg_mergers.csv, and nonmergers.csv)")
    darg = catalogues.read_darg_catalogue(darg_path)
    if merger_ids is not None:
        wanted = {str(int(i)) for i in merger_ids}
        ids = darg["id"].astype(int).astype(str)
        unknown = sorted(wanted - set(ids), key=lambda s: int(s))
        if unknown:
            raise ValueError(f"merger ids not in {darg_path}: {unknown[:10]}")
        m = catalogues.select_mergers(darg.loc[ids.isin(wanted)], stage=None)
    else:
        m = catalogues.select_mergers(darg, stage=stage)
    gz1 = catalogues.read_gz1_nonmergers(gz1_path)
    if nonmerger_ids is not None:
        wanted = {str(i) for i in nonmerger_ids}
        ids = gz1["ID"].astype(str)
        unknown = sorted(wanted - set(ids))
        if unknown:
            raise ValueError(f"non-merger IDs not in {gz1_path}: {unknown[:10]}")
        gz1 = gz1.loc[ids.isin(wanted)]
    nm = catalogues.select_nonmergers(gz1, None)
    for sub, sel in (("mergers", m), ("nonmergers", nm)):
        for oid, reason in sel.bad:
            rejected.append((f"{sub}/{oid}.jpeg", f"catalogue: {reason}"))
    for note in m.notes + nm.notes:
        log.info("%s: %s", root, note)
    listed = {"mergers": set(darg["id"].astype(int).astype(str)), "nonmergers": set(gz1["ID"].astype(str))}
    return m.table, nm.table, listed


def _candidates_selection(root: Path, merger_ids, nonmerger_ids):
    table = catalogues.read_selection(root / "catalogue.csv")
    if "label" not in table.columns:
        table["label"] = (table["subdir"] == catalogues.MERGER_SUBDIR).astype(int)
    mt = table.loc[table["label"] == 1]
    nt = table.loc[table["label"] == 0]
    if merger_ids is not None:
        mt = mt.loc[mt["object_id"].isin({str(i) for i in merger_ids})]
    if nonmerger_ids is not None:
        nt = nt.loc[nt["object_id"].isin({str(i) for i in nonmerger_ids})]
    key = catalogues.galaxy_key(nt["ra"].to_numpy(float), nt["dec"].to_numpy(float))
    nt = nt.loc[~pd.Series(key, index=nt.index).duplicated()]
    listed = {sub: set(table.loc[table["subdir"] == sub, "object_id"].astype(str)) for sub in ("mergers", "nonmergers")}
    return mt.reset_index(drop=True), nt.reset_index(drop=True), listed


def load_cutout_dir(path: str | os.PathLike, size: int = 75, merger_ids=None, nonmerger_ids=None,
                    max_nonmergers: int | None = None, seed: int = 0, *, stage: int = 3,
                    resample: str = "lanczos", workers: int | None = None, native_size: int | None = NATIVE_SIZE,
                    catalogue: str = "auto") -> LocalCutouts:
    """Load the valid cutouts of ``path`` as uint8 (N, 3, size, size) arrays; see the module docstring.

    ``merger_ids`` / ``nonmerger_ids`` restrict loading to those catalogue ids (the Darg row id
    and the GZ1 ``ID``; the stage filter is not applied to explicit merger ids).  ``native_size``
    is the expected cutout size (files of another size are rejected; None accepts any).
    Objects come mergers first, each class in increasing id order.
    """
    t0 = time.perf_counter()
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"SDSS cutout directory not found: {root}")
    if resample not in _RESAMPLE:
        raise ValueError(f"resample must be one of {sorted(_RESAMPLE)}, not {resample!r}")
    if catalogue not in ("auto", "raw", "selection"):
        raise ValueError(f"catalogue must be 'auto', 'raw' or 'selection', not {catalogue!r}")
    use_selection = catalogue == "selection" or (catalogue == "auto" and (root / "catalogue.csv").is_file())
    rejected: list[tuple[str, str]] = []
    if use_selection:
        mt, nt, listed = _candidates_selection(root, merger_ids, nonmerger_ids)
    else:
        mt, nt, listed = _candidates_raw(root, stage, merger_ids, nonmerger_ids, rejected)
    for sub in ("mergers", "nonmergers"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"cutout directory {root} has no {sub}/ subdirectory")
    unlisted = sorted(f"{sub}/{p.name}" for sub in ("mergers", "nonmergers") for p in (root / sub).glob("*.jpeg")
                      if p.stem not in listed[sub])
    if unlisted:
        log.warning("%s: %d image files have no catalogue row and are not read: %s%s", root, len(unlisted),
                    ", ".join(unlisted[:10]), ", ..." if len(unlisted) > 10 else "")

    filt = _RESAMPLE[resample]
    n_workers = workers or min(8, (os.cpu_count() or 1) + 1)
    pool = cf.ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="cutout")

    def load_rows(table: pd.DataFrame, sub: str):
        paths = [root / sub / f"{oid}.jpeg" for oid in table["object_id"]]
        out = list(pool.map(lambda p: _load_one(p, size, native_size, filt), paths))
        keep, arrays = [], []
        for j, (arr, reason) in enumerate(out):
            if arr is None:
                rel = f"{sub}/{table['object_id'].iloc[j]}.jpeg"
                rejected.append((rel, reason))
                log.warning("rejected %s: %s", root / rel, reason)
            else:
                keep.append(j)
                arrays.append(arr)
        return table.iloc[keep], arrays

    try:
        m_rows, m_arrays = load_rows(mt, "mergers")
        if max_nonmergers is not None:
            if max_nonmergers < 0:
                raise ValueError("max_nonmergers must be >= 0")
            order = np.random.default_rng(seed).permutation(len(nt))
            parts, n_arrays, start = [], [], 0
            while len(n_arrays) < max_nonmergers and start < len(order):
                need = max_nonmergers - len(n_arrays)
                chunk = order[start:start + need]
                start += len(chunk)
                rows, arrays = load_rows(nt.iloc[chunk], "nonmergers")
                parts.append(rows)
                n_arrays.extend(arrays)
            n_rows = pd.concat(parts) if parts else nt.iloc[:0]
        else:
            n_rows, n_arrays = load_rows(nt, "nonmergers")
    finally:
        pool.shutdown(wait=True)

    # deterministic order: each class by increasing (numeric) id
    def by_id(rows, arrays):
        num = pd.to_numeric(rows["object_id"], errors="coerce").to_numpy(float)
        idx = np.lexsort((rows["object_id"].to_numpy(str), np.nan_to_num(num, nan=np.inf)))
        return rows.iloc[idx], [arrays[k] for k in idx]

    m_rows, m_arrays = by_id(m_rows, m_arrays)
    n_rows, n_arrays = by_id(n_rows, n_arrays)
    n = len(m_arrays) + len(n_arrays)
    if n == 0:
        raise ValueError(f"no valid cutouts in {root} ({len(rejected)} rejected)")
    images = np.stack(m_arrays + n_arrays).astype(np.uint8, copy=False)
    labels = np.concatenate([np.ones(len(m_arrays), np.int8), np.zeros(len(n_arrays), np.int8)])
    object_id = np.array([f"darg-{o}" for o in m_rows["object_id"]] + [f"gz1-{o}" for o in n_rows["object_id"]])
    if len(set(object_id.tolist())) != n:
        raise AssertionError("duplicate object ids")  # guarded by the catalogue de-duplication
    ra = np.concatenate([m_rows["ra"].to_numpy(float), n_rows["ra"].to_numpy(float)])
    dec = np.concatenate([m_rows["dec"].to_numpy(float), n_rows["dec"].to_numpy(float)])
    scale = SDSS_PIXEL_SCALE * (native_size or NATIVE_SIZE) / size
    dt = time.perf_counter() - t0
    log.info("loaded %d mergers and %d non-mergers from %s in %.1f s (%d rejected)",
             len(m_arrays), len(n_arrays), root, dt, len(rejected))
    return LocalCutouts(images, labels, object_id, ra, dec, FILTERS, scale, rejected, unlisted, str(root), dt)
