"""Robust fetching of SDSS SkyServer cutouts.

:func:`fetch_cutouts` downloads one JPEG per object of a selection table (see
:mod:`deepmerge_da.data.catalogues`) from the SkyServer ``ImgCutout/getjpeg`` endpoint::

    GET {base_url}?ra=<deg>&dec=<deg>&scale=0.396127&width=128&height=128
        -> out_dir/<subdir>/<object_id>.jpeg

* one :class:`requests.Session` per worker thread, at most ``concurrency`` requests in flight,
  and a global rate limit (``rate_per_s`` request starts per second, all threads together);
* retries with exponential backoff on timeouts, connection errors, HTTP 5xx and HTTP 429, none on any
  other 4xx (a 404 is final after one request): the machinery of :mod:`deepmerge_da.data.http`;
* every body is checked by :func:`deepmerge_da.data.jpeg.check_jpeg` -- the one validation function that
  :mod:`deepmerge_da.data.sdss_cutouts` also uses -- before it is written to a temporary name
  (``.<name>.<random>.part``) in the destination directory and ``os.replace``-d into place, so a
  file under its final name is always complete and valid when written.  Invalid bodies (empty,
  not a JPEG, truncated, blank sky, wrong size) are not retried: the service answers them
  deterministically; they are recorded as failures, and a rerun tries them again;
* resume: an object whose file exists and validates is not requested again
  (``skipped_existing``); an existing invalid file is re-fetched (and removed if that fails);
  ``.part`` files left by a killed run are removed at start (one fetch per ``out_dir`` at a time);
* a row whose file cannot be stored (an id too long for a file name, a directory in the way, a full disk:
  any ``OSError``) fails alone, with the reason ``cannot store <subdir>/<id>.jpeg: <error>``;
* redirects are followed only to the service's own origin (scheme, host and port) and to the origins listed in
  ``allow_redirect_hosts``; a redirect elsewhere fails the object (``redirect to another host refused: ...``),
  without a retry;
* ``out_dir/manifest.csv`` (atomic temp + rename) records every object -- ``object_id, subdir,
  url, status (ok / failed / skipped_existing / pending), reason, attempts, bytes`` -- and is
  rewritten every ``manifest_every_s`` seconds, at the end, and on KeyboardInterrupt / SIGTERM
  (``pending``: not finished when interrupted; the batch loop of :mod:`deepmerge_da.data.batch`);
  ``out_dir/catalogue.csv`` holds the selection, so the directory describes itself;
* when more than ``max_fail_fraction`` of the objects failed, :class:`BatchFetchError` is raised
  (after the manifest is written) naming the base URL, the count and fraction, and the manifest.

:func:`fetch_cutout_dir` wraps :func:`fetch_cutouts` for the layout of a local cutout directory
(:mod:`deepmerge_da.data.sdss_cutouts`): ``mergers/``, ``nonmergers/`` and, last, ``fetched.json``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from deepmerge_da.data.batch import excess_failures, run_batch
from deepmerge_da.data.http import (
    FetchError,
    RateLimiter,
    SessionPool,
    Stopped,
    allowed_origins,
    check_status,
    get_within_origins,
    remove_stale_parts,
    sha256_file,
    with_retries,
)
from deepmerge_da.data.jpeg import check_jpeg, check_jpeg_file
from deepmerge_da.data.sdss_cutouts import DEFAULT_BASE_URL, SDSS_PIXEL_SCALE
from deepmerge_da.io.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["object_id", "subdir", "url", "status", "reason", "attempts", "bytes"]
SUMMARY_NAME = "fetched.json"


class BatchFetchError(FetchError, ValueError):
    """More of a batch failed than allowed (a ValueError, so the command line reports it in one line)."""

    def __init__(self, message: str, report: FetchReport):
        super().__init__(message)
        self.report = report


def _write_atomic_bytes(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def _write_csv_atomic(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def cutout_url(base_url: str, ra: float, dec: float, scale: float = SDSS_PIXEL_SCALE,
               width: int = 128, height: int = 128) -> str:
    """The SkyServer getjpeg URL of one cutout (positions in degrees, 7 decimals ~ 0.4 mas)."""
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}ra={ra:.7f}&dec={dec:.7f}&scale={scale:g}&width={int(width)}&height={int(height)}"


@dataclass
class FetchResult:
    object_id: str
    subdir: str
    url: str
    status: str  # ok | failed | skipped_existing | pending
    reason: str = ""
    attempts: int = 0
    bytes: int = 0


@dataclass
class FetchReport:
    base_url: str
    out_dir: Path
    manifest_path: Path
    catalogue_path: Path
    results: list[FetchResult] = field(default_factory=list)
    elapsed_s: float = 0.0

    def _count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def n_total(self) -> int:
        return len(self.results)

    @property
    def n_ok(self) -> int:
        return self._count("ok")

    @property
    def n_skipped(self) -> int:
        return self._count("skipped_existing")

    @property
    def n_failed(self) -> int:
        return self._count("failed")

    @property
    def failure_reasons(self) -> Counter:
        return Counter(r.reason for r in self.results if r.status == "failed")

    def write_summary(self, path: str | os.PathLike, catalogue_files: Iterable[str | os.PathLike] = ()) -> Path:
        """Write the counts, failure reasons and the SHA-256 of each catalogue the objects came from as JSON."""
        summary = {"base_url": self.base_url, "manifest": str(self.manifest_path), "objects": self.n_total,
                   "fetched": self.n_ok, "kept_existing": self.n_skipped, "failed": self.n_failed,
                   "failure_reasons": dict(self.failure_reasons), "elapsed_s": round(self.elapsed_s, 1),
                   "catalogues": {str(f): sha256_file(f) for f in catalogue_files}}
        write_text_atomic(path, json.dumps(summary, indent=1) + "\n")
        return Path(path)


def _normalise_selection(selection) -> pd.DataFrame:
    if hasattr(selection, "table") and isinstance(selection.table, pd.DataFrame):
        selection = selection.table
    if isinstance(selection, (str, os.PathLike)):
        from deepmerge_da.data.catalogues import read_selection

        selection = read_selection(selection)
    df = pd.DataFrame(selection).copy()
    for col in ("object_id", "ra", "dec", "subdir"):
        if col not in df.columns:
            raise ValueError(f"selection has no column {col!r} (columns: {', '.join(map(str, df.columns))})")
    df["object_id"] = [str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer()
                       else str(v) for v in df["object_id"]]
    df["subdir"] = df["subdir"].astype(str)
    for col, values in (("object_id", df["object_id"]), ("subdir", df["subdir"])):
        for v in values:
            if not v or v in (".", "..") or "/" in v or "\\" in v or v.startswith("."):
                raise ValueError(f"selection {col} {v!r} is not usable as a file or directory name")
    dup = df.duplicated(["subdir", "object_id"])
    if dup.any():
        first = df.loc[dup].iloc[0]
        raise ValueError(f"selection lists {first['subdir']}/{first['object_id']} more than once "
                         f"({int(dup.sum())} duplicates)")
    df["ra"] = pd.to_numeric(df["ra"], errors="coerce")
    df["dec"] = pd.to_numeric(df["dec"], errors="coerce")
    return df.reset_index(drop=True)


def fetch_cutouts(selection, out_dir: str | os.PathLike, base_url: str = DEFAULT_BASE_URL,
                  scale: float = SDSS_PIXEL_SCALE, width: int = 128, height: int = 128,
                  concurrency: int = 4, rate_per_s: float | None = 5.0, timeout_s: float = 30,
                  max_retries: int = 4, backoff_s: float = 1.0, max_fail_fraction: float = 0.05,
                  progress: bool = True, *, manifest_every_s: float = 10.0,
                  session: requests.Session | None = None, handle_sigterm: bool = True,
                  seed: int | None = None, allow_redirect_hosts: Iterable[str] = ()) -> FetchReport:
    """Download one validated JPEG cutout per selected object; see the module docstring.

    ``selection``: a DataFrame (or :class:`~deepmerge_da.data.catalogues.Selection`, or the path of a
    selection CSV) with at least ``object_id, ra, dec, subdir``.  Objects with a non-finite or
    out-of-range position are failed without a request.  ``allow_redirect_hosts``: origins
    (``scheme://host[:port]``) besides ``base_url``'s that a redirect may lead to.  Returns a
    :class:`FetchReport`; raises :class:`BatchFetchError` (carrying ``.report``) when
    ``failed / total > max_fail_fraction``.
    """
    t0 = time.monotonic()
    origins = allowed_origins(base_url, allow_redirect_hosts)
    df = _normalise_selection(selection)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    subdirs = sorted(set(df["subdir"]))
    for sd in subdirs:
        (out / sd).mkdir(parents=True, exist_ok=True)
        stale = remove_stale_parts(out / sd)
        if stale:
            log.info("removed %d stale temporary files from %s", stale, out / sd)
    catalogue_path = out / "catalogue.csv"
    manifest_path = out / "manifest.csv"
    remove_stale_parts(out, prefix=f".{catalogue_path.name}.")
    _write_csv_atomic(df, catalogue_path)

    size = (int(width), int(height))
    results: list[FetchResult] = []
    for row in df.itertuples(index=False):
        ra, dec = float(row.ra), float(row.dec)
        ok_pos = np.isfinite(ra) and np.isfinite(dec) and 0 <= ra < 360 and -90 <= dec <= 90
        url = cutout_url(base_url, ra, dec, scale, width, height) if ok_pos else ""
        results.append(FetchResult(row.object_id, row.subdir, url, "pending" if ok_pos else "failed",
                                   "" if ok_pos else f"bad position ra={row.ra} dec={row.dec}"))
    report = FetchReport(base_url, out, manifest_path, catalogue_path, results)

    stop = threading.Event()
    limiter = RateLimiter(rate_per_s)
    sessions = SessionPool(session)
    rng_lock = threading.Lock()
    master_rng = random.Random(seed)

    def fetch_one(r: FetchResult, dest: Path, res: FetchResult) -> None:
        """Fetch one object into ``res``; file system errors propagate."""
        try:
            existing = os.stat(dest)  # not Path.exists: an error other than 'no such file' must surface here
        except FileNotFoundError:
            existing = None
        existing_reason = None
        if existing is not None:
            chk = check_jpeg_file(dest, size)
            if chk.ok:
                res.status, res.bytes = "skipped_existing", existing.st_size
                return
            existing_reason = chk.reason
            log.info("%s exists but is invalid (%s): fetching it again", dest, chk.reason)
        if stop.is_set():
            return
        with rng_lock:
            rng = random.Random(master_rng.random())

        def attempt() -> bytes:
            resp = get_within_origins(sessions.get(), r.url, origins, timeout_s=timeout_s)
            try:
                check_status(resp)
                return resp.content
            finally:
                resp.close()

        try:
            data, attempts, reason = with_retries(attempt, max_retries=max_retries, backoff_s=backoff_s,
                                                  limiter=limiter, stop=stop, rng=rng)
        except Stopped:
            return
        res.attempts = attempts
        if reason is None:
            res.bytes = len(data)
            chk = check_jpeg(data, size)
            if chk.ok:
                _write_atomic_bytes(dest, data)
                res.status = "ok"
                return
            reason = chk.reason
        res.status, res.reason = "failed", reason
        if existing_reason is not None:
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()

    def work(i: int) -> FetchResult:
        r = results[i]
        res = FetchResult(r.object_id, r.subdir, r.url, "pending")
        try:
            fetch_one(r, out / r.subdir / f"{r.object_id}.jpeg", res)
        except OSError as exc:  # this row only: raised, it would cancel every other row
            res.status, res.reason = "failed", f"cannot store {r.subdir}/{r.object_id}.jpeg: {exc.strerror or exc}"
        return res

    todo = [i for i, r in enumerate(results) if r.status == "pending"]
    try:
        run_batch(results, todo, work, manifest_path=manifest_path, columns=MANIFEST_COLUMNS, concurrency=concurrency,
                  stop=stop, manifest_every_s=manifest_every_s,
                  progress={"desc": "cutouts", "unit": "img"} if progress else None, thread_name_prefix="fetch",
                  handle_sigterm=handle_sigterm,
                  on_interrupt=lambda cause: log.warning("fetch interrupted (%s); writing the manifest", cause))
    finally:
        sessions.close()
    report.elapsed_s = time.monotonic() - t0

    log.info("fetched %d, kept %d existing, %d failed of %d cutouts from %s in %.1f s",
             report.n_ok, report.n_skipped, report.n_failed, report.n_total, base_url, report.elapsed_s)
    message = excess_failures(results, max_fail_fraction=max_fail_fraction, what="cutouts", source=base_url,
                              manifest_path=manifest_path)
    if message is not None:
        raise BatchFetchError(message, report)
    return report


def fetch_cutout_dir(selection, out_dir: str | os.PathLike, *, catalogue_files: Iterable[str | os.PathLike] = (),
                     **fetch_options) -> FetchReport:
    """Fetch ``selection`` into a local cutout directory, the layout :mod:`deepmerge_da.data.sdss_cutouts` reads.

    ``out_dir`` gets ``mergers/`` and ``nonmergers/`` (both, even if one class is empty), ``catalogue.csv``
    and ``manifest.csv`` from :func:`fetch_cutouts` (called with ``fetch_options``), and last, only when the
    fetch succeeded, ``fetched.json`` (:meth:`FetchReport.write_summary`, with the SHA-256 of
    ``catalogue_files``), which marks a complete fetch; a stale one is removed first.
    """
    from deepmerge_da.data.catalogues import MERGER_SUBDIR, NONMERGER_SUBDIR

    out = Path(out_dir)
    for sub in (MERGER_SUBDIR, NONMERGER_SUBDIR):
        (out / sub).mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_NAME).unlink(missing_ok=True)
    report = fetch_cutouts(selection, out, **fetch_options)
    report.write_summary(out / SUMMARY_NAME, catalogue_files)
    return report
