"""HTTP machinery of the fetchers, and fetching single files with a checksum.

* :class:`SessionPool`: one :class:`requests.Session` per worker thread; :class:`RateLimiter`: a global rate
  limit (``rate_per_s`` request starts per second, all threads together);
* :func:`with_retries`: retries with exponential backoff (``backoff_s * 2**k`` plus up to 10 % jitter; a
  ``Retry-After`` header of a 429/503 is honoured up to 60 s) on timeouts, connection errors, HTTP 5xx and
  HTTP 429 (the server asking us to slow down); no retry on any other 4xx (a 404 is final after one request);
* :func:`get_within_origins`: redirects are followed only to the requested URL's own origin (scheme, host and
  port) and to the origins listed in ``allow_redirect_hosts`` (:func:`allowed_origins`); a redirect elsewhere is
  a final failure (``redirect to another host refused: ...``), without a retry;
* :func:`fetch_file`: one file to a temporary name + rename, with retries and an optional SHA-256 check.

The cutout downloader built on these is :mod:`deepmerge_da.data.fetch`.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from deepmerge_da.io.atomic import mkstemp_beside, write_text_atomic

log = logging.getLogger(__name__)

USER_AGENT = "deepmerge-da/0.1 (research reproduction of DeepMerge II; python-requests)"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FetchError(RuntimeError):
    """A download failed, or too many of a batch did."""


class ChecksumError(FetchError):
    """A downloaded file does not have the expected SHA-256 digest."""


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


class SessionPool:
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


class Stopped(Exception):
    """:func:`with_retries` gave up before an attempt because its ``stop`` event was set."""


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return min(60.0, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def check_status(resp: requests.Response) -> None:
    """Pass a 2xx response; a 5xx or 429 is a retryable failure, any other status a final one."""
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


def get_within_origins(session: requests.Session, url: str, origins: frozenset[str], *, timeout_s: float,
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


def with_retries(attempt: Callable[[], object], *, max_retries: int, backoff_s: float,
                 limiter: RateLimiter | None, stop: threading.Event, rng: random.Random
                 ) -> tuple[object | None, int, str | None]:
    """Run ``attempt`` up to ``max_retries + 1`` times; returns (value, attempts, failure reason).

    Each attempt waits for ``limiter``'s slot; raises :class:`Stopped` when ``stop`` is set before an attempt.
    """
    for k in range(max_retries + 1):
        if limiter is not None:
            if not limiter.wait(stop):
                raise Stopped()
        elif stop.is_set():
            raise Stopped()
        attempts = k + 1
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
            raise Stopped()
    raise AssertionError("unreachable")


def remove_stale_parts(directory: Path, prefix: str = ".") -> int:
    """Remove the temporary ``<prefix>...part`` files a killed run left in ``directory``; returns how many."""
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
    remove_stale_parts(dest.parent, prefix=f".{dest.name}.")
    own = session is None
    s = session or requests.Session()
    if own:
        s.headers["User-Agent"] = USER_AGENT

    def attempt() -> tuple[str, str]:
        fd, tmp = mkstemp_beside(dest)
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as fh, \
                    get_within_origins(s, url, origins, timeout_s=timeout_s, stream=True) as resp:
                check_status(resp)
                for chunk in resp.iter_content(chunk_size):
                    fh.write(chunk)
                    h.update(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp, h.hexdigest()

    try:
        value, attempts, reason = with_retries(attempt, max_retries=max_retries, backoff_s=backoff_s,
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
