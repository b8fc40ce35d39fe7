"""Robust HTTP fetching of SDSS SkyServer cutouts, and of single files with a checksum.

:func:`fetch_cutouts` downloads one JPEG per object of a selection table (see
:mod:`deepmerge_da.data.catalogues`) from the SkyServer ``ImgCutout/getjpeg`` endpoint::

    GET {base_url}?ra=<deg>&dec=<deg>&scale=0.396127&width=128&height=128
        -> out_dir/<subdir>/<object_id>.jpeg

* one :class:`requests.Session` per worker thread, at most ``concurrency`` requests in flight,
  and a global rate limit (``rate_per_s`` request starts per second, all threads together);
* retries with exponential backoff (``backoff_s * 2**k`` plus up to 10 % jitter; a
  ``Retry-After`` header of a 429/503 is honoured up to 60 s) on timeouts, connection errors,
  HTTP 5xx and HTTP 429 (the server asking us to slow down); no retry on any other 4xx
  (a 404 is final after one request);
* every body is checked by :func:`check_jpeg` -- the one validation function that
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
  without a retry.  :func:`fetch_file` does the same;
* ``out_dir/manifest.csv`` (atomic temp + rename) records every object -- ``object_id, subdir,
  url, status (ok / failed / skipped_existing / pending), reason, attempts, bytes`` -- and is
  rewritten every ``manifest_every_s`` seconds, at the end, and on KeyboardInterrupt / SIGTERM
  (``pending``: not finished when interrupted); ``out_dir/catalogue.csv`` holds the selection,
  so the directory describes itself;
* when more than ``max_fail_fraction`` of the objects failed, :class:`BatchFetchError` is raised
  (after the manifest is written) naming the base URL, the count and fraction, and the manifest.

:func:`fetch_cutout_dir` wraps :func:`fetch_cutouts` for the layout of a local cutout directory
(:mod:`deepmerge_da.data.sdss_cutouts`): ``mergers/``, ``nonmergers/`` and, last, ``fetched.json``.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import logging
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests
from PIL import Image

from deepmerge_da.io.atomic import atomic_path, mkstemp_beside, write_text_atomic

log = logging.getLogger(__name__)

SDSS_PIXEL_SCALE = 0.396127  # arcsec / pixel, SkyServer default
DEFAULT_BASE_URL = "https://skyserver.sdss.org/dr15/SkyServerWS/ImgCutout/getjpeg"
USER_AGENT = "deepmerge-da/0.1 (research reproduction of DeepMerge II; python-requests)"
MANIFEST_COLUMNS = ["object_id", "subdir", "url", "status", "reason", "attempts", "bytes"]
SUMMARY_NAME = "fetched.json"
_DEFAULT_PORTS = {"http": 80, "https": 443}

# An image is blank when its pixel standard deviation (0..255 scale, all channels) is below
# BLANK_STD, or when at least BLANK_FRACTION of its pixels are within BLANK_TOLERANCE of the
# median colour.  SkyServer's blank answers (empty sky / outside the footprint) are a single
# colour (std 0); the faintest real cutouts of the local copy have std ~ 8.
BLANK_STD = 2.0
BLANK_FRACTION = 0.98
BLANK_TOLERANCE = 3


class FetchError(RuntimeError):
    """A download failed, or too many of a batch did."""

    def __init__(self, message: str, report: "FetchReport | None" = None):
        super().__init__(message)
        self.report = report


class ChecksumError(FetchError):
    """A downloaded file does not have the expected SHA-256 digest."""


class BatchFetchError(FetchError, ValueError):
    """More of a batch failed than allowed (a ValueError, so the command line reports it in one line)."""


# --------------------------------------------------------------------------------------------
# validation (shared with sdss_local)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JpegCheck:
    """Outcome of :func:`check_jpeg`: ``ok``, the ``reason`` when not, the decoded RGB image when asked."""

    ok: bool
    reason: str | None = None
    image: Image.Image | None = None


def check_jpeg(data: bytes, expected_size: tuple[int, int] | None = None, *, keep_image: bool = False,
               blank_std: float = BLANK_STD, blank_fraction: float = BLANK_FRACTION) -> JpegCheck:
    """Validate the bytes of a cutout; the one check used by fetching and by local loading.

    Reasons, in the order tested: ``"empty body"``; ``"not a jpeg"`` (no FFD8 start of image,
    e.g. an HTML error page, or Pillow finds another format); ``"truncated jpeg"`` (no FFD9 end
    of image, or the decoder runs out of data); ``"corrupt jpeg: ..."`` (``verify()`` or the full
    decode fails otherwise); ``"not an RGB jpeg (mode L)"``; ``"wrong size WxH (expected WxH)"``;
    ``"blank image"`` (see :data:`BLANK_STD`).  With ``keep_image`` the decoded RGB
    :class:`PIL.Image.Image` is returned in ``image``.
    """
    if not data:
        return JpegCheck(False, "empty body")
    if data[:2] != b"\xff\xd8":
        return JpegCheck(False, "not a jpeg")
    if not data.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9"):
        return JpegCheck(False, "truncated jpeg")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format != "JPEG":
                return JpegCheck(False, "not a jpeg")
            probe.verify()
        im = Image.open(io.BytesIO(data))
        im.load()  # full decode: raises on truncated / corrupt entropy-coded data
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg.lower():
            return JpegCheck(False, "truncated jpeg")
        if "cannot identify image file" in msg:
            msg = "unreadable header"
        return JpegCheck(False, f"corrupt jpeg: {msg}")
    if im.mode != "RGB":
        return JpegCheck(False, f"not an RGB jpeg (mode {im.mode})")
    if expected_size is not None and tuple(im.size) != tuple(expected_size):
        w, h = im.size
        return JpegCheck(False, f"wrong size {w}x{h} (expected {expected_size[0]}x{expected_size[1]})")
    if is_blank(im, blank_std=blank_std, blank_fraction=blank_fraction):
        return JpegCheck(False, "blank image")
    return JpegCheck(True, None, im if keep_image else None)


def is_blank(pixels, *, blank_std: float = BLANK_STD, blank_fraction: float = BLANK_FRACTION,
             tolerance: int = BLANK_TOLERANCE) -> bool:
    """True for an image of (almost) one colour: a PIL image, or an (H, W[, C]) uint8 array.

    Blank means: the standard deviation of all pixel values (all channels together) is below
    ``blank_std``, or at least ``blank_fraction`` of the pixels are within ``tolerance`` (in every
    channel) of the modal colour.  Computed from the per-channel histograms (fast); the joint
    fraction is evaluated only when every single channel could pass it.
    """
    if isinstance(pixels, Image.Image):
        im = pixels
        arr = None
    else:
        arr = np.asarray(pixels)
        if arr.dtype != np.uint8:
            raise TypeError(f"is_blank expects uint8 pixels, not {arr.dtype}")
        im = Image.fromarray(arr if arr.ndim == 2 or arr.shape[-1] in (3, 4) else arr[..., 0])
    bands = len(im.getbands())
    hist = np.asarray(im.histogram(), np.float64).reshape(bands, 256)
    n = hist[0].sum()
    if n == 0:
        return True
    v = np.arange(256, dtype=np.float64)
    total = hist.sum(axis=0)
    mean = (total * v).sum() / total.sum()
    var = (total * (v - mean) ** 2).sum() / total.sum()
    if var < blank_std ** 2:
        return True
    mode = hist.argmax(axis=1)
    per_channel = [hist[c, max(0, m - tolerance):m + tolerance + 1].sum() / n for c, m in enumerate(mode)]
    if min(per_channel) < blank_fraction:
        return False
    a = (np.asarray(im) if arr is None else arr).reshape(int(n), -1).astype(np.int16)
    close = np.all(np.abs(a - mode.astype(np.int16)) <= tolerance, axis=1)
    return float(close.mean()) >= blank_fraction


def check_jpeg_file(path: str | os.PathLike, expected_size: tuple[int, int] | None = None, *,
                    keep_image: bool = False) -> JpegCheck:
    """:func:`check_jpeg` on a file; ``"missing file"`` / ``"unreadable file: ..."`` when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return JpegCheck(False, "missing file")
    except OSError as exc:
        return JpegCheck(False, f"unreadable file: {exc}")
    return check_jpeg(data, expected_size, keep_image=keep_image)


# --------------------------------------------------------------------------------------------
# HTTP machinery
# --------------------------------------------------------------------------------------------

class RateLimiter:
    """At most ``rate_per_s`` request starts per second over all threads (None/0: unlimited)."""

    def __init__(self, rate_per_s: float | None):
        self.interval = 1.0 / rate_per_s if rate_per_s else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event | None = None) -> bool:
        """Block until this caller's slot; False if ``stop`` was set meanwhile."""
        if self.interval <= 0:
            return not (stop is not None and stop.is_set())
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - time.monotonic()
        if delay > 0:
            if stop is not None:
                return not stop.wait(delay)
            time.sleep(delay)
        return not (stop is not None and stop.is_set())


class _SessionPool:
    """One requests.Session per thread (Session is not documented as thread-safe)."""

    def __init__(self, shared: requests.Session | None = None):
        self._shared = shared
        self._local = threading.local()
        self._all: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        if self._shared is not None:
            return self._shared
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["User-Agent"] = USER_AGENT
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            self._local.session = s
            with self._lock:
                self._all.append(s)
        return s

    def close(self) -> None:
        with self._lock:
            for s in self._all:
                s.close()
            self._all.clear()


class _Retryable(Exception):
    def __init__(self, kind: str, retry_after: float | None = None):
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


class _Permanent(Exception):
    pass


class _Stopped(Exception):
    pass


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return min(60.0, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def _check_status(resp: requests.Response) -> None:
    code = resp.status_code
    if 200 <= code < 300:
        return
    if code >= 500 or code == 429:
        raise _Retryable(f"http {code}", _retry_after(resp))
    raise _Permanent(f"http {code}")


def _classify(exc: BaseException) -> Exception:
    """Map a requests exception onto _Retryable / _Permanent."""
    if isinstance(exc, requests.Timeout):
        return _Retryable("timeout")
    if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError)):
        text = str(exc).lower()
        return _Retryable("timeout" if "timed out" in text or "timeout" in text else "connection error")
    return _Permanent(f"request error: {type(exc).__name__}: {exc}")


def url_origin(url: str) -> str:
    """``scheme://host:port`` of a URL: the scheme and host in lower case, the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{parts.port or _DEFAULT_PORTS.get(scheme)}"


def allowed_origins(url: str, allow_redirect_hosts: Iterable[str] = ()) -> frozenset[str]:
    """The origins a request for ``url`` may be redirected to: its own and each ``scheme://host[:port]`` given."""
    origins = {url_origin(url)}
    for entry in allow_redirect_hosts or ():
        parts = urlsplit(str(entry))
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
                or parts.query or parts.fragment or parts.username is not None:
            raise ValueError(f"allow_redirect_hosts entry {entry!r} is not an origin scheme://host[:port] "
                             f"(e.g. https://data.example.org)")
        origins.add(url_origin(str(entry)))
    return frozenset(origins)


def _get(session: requests.Session, url: str, origins: frozenset[str], *, timeout_s: float,
         stream: bool = False) -> requests.Response:
    """GET ``url``, following redirects (as requests would) only to ``origins``; a redirect elsewhere is final."""
    resp = session.get(url, timeout=timeout_s, stream=stream, allow_redirects=False)
    for _ in range(session.max_redirects):
        target = resp.next  # set by requests for a redirect when it does not follow it
        if target is None:
            return resp
        resp.close()
        origin = url_origin(target.url)
        if origin not in origins:
            raise _Permanent(f"redirect to another host refused: {origin} (not in allow_redirect_hosts)")
        resp = session.send(target, timeout=timeout_s, stream=stream, allow_redirects=False)
    resp.close()
    raise _Permanent(f"more than {session.max_redirects} redirects")


def _with_retries(attempt: Callable[[], object], *, max_retries: int, backoff_s: float,
                  limiter: RateLimiter | None, stop: threading.Event, rng: random.Random
                  ) -> tuple[object | None, int, str | None]:
    """Run ``attempt`` up to ``max_retries + 1`` times; returns (value, attempts, failure reason)."""
    attempts = 0
    for k in range(max_retries + 1):
        if limiter is not None:
            if not limiter.wait(stop):
                raise _Stopped()
        elif stop.is_set():
            raise _Stopped()
        attempts += 1
        try:
            return attempt(), attempts, None
        except _Permanent as exc:
            return None, attempts, str(exc)
        except _Retryable as exc:
            err = exc
        except requests.RequestException as exc:
            err = _classify(exc)
            if isinstance(err, _Permanent):
                return None, attempts, str(err)
        if k == max_retries:
            return None, attempts, f"{err.kind} after {max_retries} retries"
        delay = backoff_s * (2 ** k)
        delay += rng.uniform(0, 0.1 * delay)
        if err.retry_after is not None:
            delay = max(delay, err.retry_after)
        log.debug("retrying after %s in %.2f s", err.kind, delay)
        if stop.wait(delay):
            raise _Stopped()
    raise AssertionError("unreachable")


def _write_atomic_bytes(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def _remove_stale_parts(directory: Path, prefix: str = ".") -> int:
    n = 0
    if directory.is_dir():
        for p in directory.iterdir():
            if p.name.startswith(prefix) and p.name.endswith(".part") and p.is_file():
                try:
                    p.unlink()
                    n += 1
                except FileNotFoundError:
                    pass
    return n


def _write_csv_atomic(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


# --------------------------------------------------------------------------------------------
# cutouts
# --------------------------------------------------------------------------------------------

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
    def failed_fraction(self) -> float:
        return self.n_failed / self.n_total if self.n_total else 0.0

    @property
    def failure_reasons(self) -> Counter:
        return Counter(r.reason for r in self.results if r.status == "failed")

    def as_dataframe(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.results], columns=MANIFEST_COLUMNS)

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
        stale = _remove_stale_parts(out / sd)
        if stale:
            log.info("removed %d stale temporary files from %s", stale, out / sd)
    catalogue_path = out / "catalogue.csv"
    manifest_path = out / "manifest.csv"
    for name in (catalogue_path.name, manifest_path.name):
        _remove_stale_parts(out, prefix=f".{name}.")
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

    def write_manifest() -> None:
        _write_csv_atomic(report.as_dataframe(), manifest_path)

    stop = threading.Event()
    limiter = RateLimiter(rate_per_s)
    sessions = _SessionPool(session)
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
            resp = _get(sessions.get(), r.url, origins, timeout_s=timeout_s)
            try:
                _check_status(resp)
                return resp.content
            finally:
                resp.close()

        try:
            data, attempts, reason = _with_retries(attempt, max_retries=max_retries, backoff_s=backoff_s,
                                                   limiter=limiter, stop=stop, rng=rng)
        except _Stopped:
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
            try:
                dest.unlink()
            except FileNotFoundError:
                pass

    def work(i: int) -> FetchResult:
        r = results[i]
        res = FetchResult(r.object_id, r.subdir, r.url, "pending")
        try:
            fetch_one(r, out / r.subdir / f"{r.object_id}.jpeg", res)
        except OSError as exc:  # this row only: raised, it would cancel every other row
            res.status, res.reason = "failed", f"cannot store {r.subdir}/{r.object_id}.jpeg: {exc.strerror or exc}"
        return res

    todo = [i for i, r in enumerate(results) if r.status == "pending"]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(results), initial=len(results) - len(todo), desc="cutouts", unit="img")

    # SIGTERM only sets a flag that the main loop polls: an exception raised by the handler could land
    # inside a manifest write and leave its temporary file behind
    old_handler = None
    installed = False
    terminated = threading.Event()
    if handle_sigterm and threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):  # noqa: ARG001
            terminated.set()
            stop.set()

        try:
            old_handler = signal.signal(signal.SIGTERM, on_term)
            installed = True
        except (ValueError, OSError):
            installed = False

    pool = cf.ThreadPoolExecutor(max_workers=max(1, int(concurrency)), thread_name_prefix="fetch")
    futures: dict[cf.Future, int] = {}
    interrupted: BaseException | None = None
    try:
        futures = {pool.submit(work, i): i for i in todo}
        pending = set(futures)
        last_write = time.monotonic()
        while pending and not terminated.is_set():
            done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                results[futures[fut]] = fut.result()
                if bar is not None:
                    bar.update(1)
            if time.monotonic() - last_write >= manifest_every_s:
                write_manifest()
                last_write = time.monotonic()
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        # reached on success, interruption and unexpected errors alike: stop the workers (those in
        # a request finish it, bounded by timeout_s), record what they finished, write the manifest
        if interrupted is not None or terminated.is_set():
            log.warning("fetch interrupted (%s); writing the manifest",
                        "SIGTERM" if terminated.is_set() else "KeyboardInterrupt")
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for fut, i in futures.items():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                results[i] = fut.result()
        sessions.close()
        if bar is not None:
            bar.close()
        report.elapsed_s = time.monotonic() - t0
        write_manifest()
        if installed:
            signal.signal(signal.SIGTERM, old_handler)
    if terminated.is_set():
        raise SystemExit(128 + signal.SIGTERM)
    if interrupted is not None:
        raise interrupted

    log.info("fetched %d, kept %d existing, %d failed of %d cutouts from %s in %.1f s",
             report.n_ok, report.n_skipped, report.n_failed, report.n_total, base_url, report.elapsed_s)
    if report.n_failed and report.failed_fraction > max_fail_fraction:
        reasons = ", ".join(f"{k}: {v}" for k, v in report.failure_reasons.most_common(5))
        raise BatchFetchError(
            f"{report.n_failed} of {report.n_total} cutouts ({report.failed_fraction:.1%}) failed to "
            f"download from {base_url}, more than the allowed {max_fail_fraction:.1%} ({reasons}); "
            f"see the manifest {manifest_path}", report)
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


# --------------------------------------------------------------------------------------------
# single files
# --------------------------------------------------------------------------------------------

def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_file(url: str, dest: str | os.PathLike, sha256: str | None = None, *, timeout_s: float = 60,
               max_retries: int = 4, backoff_s: float = 1.0, session: requests.Session | None = None,
               chunk_size: int = 1 << 16, overwrite: bool = False, allow_redirect_hosts: Iterable[str] = (),
               record_sha256: bool = False) -> Path:
    """Download ``url`` to ``dest`` (temporary name + rename) with retries and an optional SHA-256 check.

    An existing ``dest`` is kept when ``sha256`` is None (unless ``overwrite``) or when it matches.
    A digest mismatch raises :class:`ChecksumError` naming the file, the expected and the actual
    digest, and leaves no file at ``dest`` (nor any temporary file).  Other failures raise
    :class:`FetchError` naming the URL and the reason; a redirect to an origin other than ``url``'s
    and those in ``allow_redirect_hosts`` is one.  Without ``sha256`` a download is logged as
    unverified, with its digest; ``record_sha256`` then also writes the digest of ``dest`` to
    ``<dest>.sha256`` (``sha256sum`` format), whether downloaded or kept.
    """
    origins = allowed_origins(url, allow_redirect_hosts)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = sha256.lower() if sha256 else None
    sidecar = dest.with_name(f"{dest.name}.sha256")
    if dest.exists() and not overwrite:
        if expected is None or sha256_file(dest) == expected:
            if expected is None and record_sha256:
                write_text_atomic(sidecar, f"{sha256_file(dest)}  {dest.name}\n")
            return dest
        log.info("%s exists with the wrong checksum: downloading it again", dest)
    _remove_stale_parts(dest.parent, prefix=f".{dest.name}.")
    own = session is None
    s = session or requests.Session()
    if own:
        s.headers["User-Agent"] = USER_AGENT

    def attempt() -> tuple[str, str]:
        fd, tmp = mkstemp_beside(dest)
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as fh, _get(s, url, origins, timeout_s=timeout_s, stream=True) as resp:
                _check_status(resp)
                for chunk in resp.iter_content(chunk_size):
                    fh.write(chunk)
                    h.update(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return tmp, h.hexdigest()

    try:
        value, attempts, reason = _with_retries(attempt, max_retries=max_retries, backoff_s=backoff_s,
                                                limiter=None, stop=threading.Event(), rng=random.Random())
    finally:
        if own:
            s.close()
    if reason is not None:
        raise FetchError(f"cannot download {url} to {dest}: {reason} ({attempts} attempts)")
    tmp, actual = value
    if expected is not None and actual != expected:
        os.unlink(tmp)
        if dest.exists():
            dest.unlink()
        raise ChecksumError(f"checksum mismatch for {dest} (from {url}): expected sha256 {expected}, "
                            f"got {actual}; the file was removed")
    os.replace(tmp, dest)
    if expected is None:
        if record_sha256:
            write_text_atomic(sidecar, f"{actual}  {dest.name}\n")
        log.warning("%s: downloaded from %s without a sha256 to check, so unverified; its sha256 is %s%s", dest, url,
                    actual, f" (recorded in {sidecar})" if record_sha256 else "")
    return dest
