"""Requests to the Illustris web API, with the fetching discipline of the SDSS cutout fetcher.

The API (https://www.illustris-project.org/data/docs/api/) answers ``GET`` requests under its root
(:data:`DEFAULT_BASE_URL`, ``data.illustris.base_url``) that carry the personal API key in the header ``api-key``
(the docs' getting-started guide: ``headers = {"api-key": "INSERT_API_KEY_HERE"}``).  The key is read from the
environment variable :data:`API_KEY_ENV` only when a request is to be made, is sent in that header only -- to the
API's origin and to the origins in ``allow_redirect_hosts`` (redirects elsewhere are refused, as the SDSS fetcher
does) -- and is never written to a log, a config, a manifest or any other file.

:class:`IllustrisApi` gives every download of :mod:`deepmerge_da.data.illustris` the machinery of
:mod:`deepmerge_da.data.http`: one session per worker thread, at most ``concurrency`` requests in flight and a
global rate limit (``rate_per_s``), retries with exponential backoff on timeouts, connection errors, HTTP 5xx and
429 (none on other 4xx), each body streamed to a temporary name beside its destination, checked by the caller's
validation function, then renamed into place -- so a file under its final name is always complete and valid, and a
rerun (after a failure or ``kill -9``) requests only what is missing or invalid.  :meth:`IllustrisApi.run_batch`
fetches many objects through the batch loop of :mod:`deepmerge_da.data.batch`, which rewrites a manifest
(``object_id, url, status, reason, attempts, bytes``; status ok / skipped_existing / failed / pending) every
``manifest_every_s`` seconds, at the end and on KeyboardInterrupt / SIGTERM, and raises :class:`IllustrisError`
when more than ``max_fail_fraction`` of the objects failed.

A missing key, a key the API refuses (HTTP 401/403) and an unreachable service (a connection error after every
retry before the service answered anything) each stop the run with one line that says so (:class:`IllustrisError`).
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from deepmerge_da.data.batch import Terminated, excess_failures, run_batch
from deepmerge_da.data.http import (
    FetchError,
    RateLimiter,
    SessionPool,
    Stopped,
    allowed_origins,
    check_status,
    get_within_origins,
    with_retries,
)
from deepmerge_da.io.atomic import mkstemp_beside

log = logging.getLogger(__name__)

#: The API's root, as its documentation gives it (with https; the docs' examples use http).
DEFAULT_BASE_URL = "https://www.illustris-project.org/api/"
#: The environment variable that holds the personal API key; the only place the key is read from.
API_KEY_ENV = "ILLUSTRIS_API_KEY"
#: The request header that carries the key (the API docs' getting-started guide).
KEY_HEADER = "api-key"
MANIFEST_COLUMNS = ["object_id", "url", "status", "reason", "attempts", "bytes"]


class IllustrisError(FetchError, ValueError):
    """The Illustris API cannot be used (no key, key refused, unreachable) or too much of a batch failed: one line
    (a ValueError, so the command line reports it in one line)."""


def api_key() -> str:
    """The API key from :data:`API_KEY_ENV`; raises :class:`IllustrisError` when it is not set."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise IllustrisError(f"{API_KEY_ENV} is not set: the Illustris API needs your personal API key (from your "
                             f"account at https://www.illustris-project.org/data/), given in that environment "
                             f"variable only, never in a config file")
    return key


@dataclass
class Fetched:
    """What became of one object (one manifest row)."""

    object_id: str
    url: str
    status: str  # ok | skipped_existing | failed | pending
    reason: str = ""
    attempts: int = 0
    bytes: int = 0

    @property
    def usable(self) -> bool:
        return self.status in ("ok", "skipped_existing")


class IllustrisApi:
    """Validated, resumable downloads from the Illustris API (see the module docstring).

    ``base_url`` is the API root (``.../api/``) and ``simulation`` the run (``Illustris-1``): :meth:`url` joins
    them with a path.
    """

    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, simulation: str = "Illustris-1", concurrency: int = 2,
                 rate_per_s: float | None = 2.0, timeout_s: float = 300, max_retries: int = 4, backoff_s: float = 1.0,
                 max_fail_fraction: float = 0.05, allow_redirect_hosts: Iterable[str] = (),
                 manifest_every_s: float = 10.0, progress: bool = True):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.simulation = simulation
        self.concurrency = max(1, int(concurrency))
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, int(max_retries), backoff_s
        self.max_fail_fraction = max_fail_fraction
        self.manifest_every_s = manifest_every_s
        self.progress = progress
        self.origins = allowed_origins(self.base_url, allow_redirect_hosts)
        self.limiter = RateLimiter(rate_per_s)
        self.sessions = SessionPool()
        self.stop = threading.Event()
        self._rng = random.Random()
        self._key: str | None = None
        self._answered = False  # the service has answered at least one request (with any HTTP status)
        self._refused: str | None = None  # HTTP 401/403
        self._unreachable: str | None = None

    # -- single downloads --------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        """``base_url/simulation/path`` (``path`` relative, e.g. ``snapshots/135/subhalos/7/``)."""
        return f"{self.base_url}{self.simulation}/{path}"

    def _session(self) -> requests.Session:
        if self._key is None:
            self._key = api_key()
        session = self.sessions.get()
        session.headers[KEY_HEADER] = self._key
        return session

    def _download(self, url: str, dest: Path) -> tuple[str, int]:
        """One attempt: stream ``url`` into a new temporary file beside ``dest``; returns its name and size."""
        session = self._session()
        fd, tmp = mkstemp_beside(dest)
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh, \
                    get_within_origins(session, url, self.origins, timeout_s=self.timeout_s, stream=True) as resp:
                check_status(resp)
                for chunk in resp.iter_content(1 << 16):
                    fh.write(chunk)
                    size += len(chunk)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp, size

    def fetch(self, url: str, dest: str | os.PathLike, check: Callable[[Path], str | None],
              object_id: str = "") -> Fetched:
        """Download ``url`` to ``dest`` unless a valid file is there; ``check(path)`` is None for a valid file, else
        the reason.  An invalid body is not retried (the service answers it again) and leaves no file at ``dest``.
        A file system error (a full disk) raises :class:`OSError`."""
        dest = Path(dest)
        res = Fetched(object_id, url, "pending")
        if dest.exists():
            reason = check(dest)
            if reason is None:
                res.status, res.bytes = "skipped_existing", dest.stat().st_size
                return res
            log.info("%s exists but is invalid (%s): fetching it again", dest, reason)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            value, res.attempts, reason = with_retries(lambda: self._download(url, dest), max_retries=self.max_retries,
                                                       backoff_s=self.backoff_s, limiter=self.limiter, stop=self.stop,
                                                       rng=self._rng)
        except Stopped:
            return res
        if reason is None or reason.startswith("http "):
            self._answered = True
        if reason is None:
            tmp, res.bytes = value
            reason = check(Path(tmp))
            if reason is None:
                os.replace(tmp, dest)
                res.status = "ok"
                return res
            Path(tmp).unlink(missing_ok=True)
        elif reason in ("http 401", "http 403"):
            self._refused = reason
            self.stop.set()
        elif reason.startswith("connection error") and not self._answered:
            self._unreachable = reason
            self.stop.set()
        dest.unlink(missing_ok=True)  # an invalid file left by an earlier run
        res.status, res.reason = "failed", reason
        return res

    def raise_for_service(self) -> None:
        """Raise the one-line :class:`IllustrisError` of a refused key or an unreachable service, if there was one."""
        if self._refused:
            raise IllustrisError(f"the Illustris API at {self.base_url} refused the request ({self._refused}): check "
                                 f"the key in {API_KEY_ENV}")
        if self._unreachable:
            raise IllustrisError(f"cannot reach the Illustris API at {self.base_url}: {self._unreachable}")

    def fetch_one(self, url: str, dest: str | os.PathLike, check: Callable[[Path], str | None], what: str) -> Path:
        """:meth:`fetch` of a file the run cannot do without: any failure raises :class:`IllustrisError`."""
        res = self.fetch(url, dest, check, what)
        self.raise_for_service()
        if not res.usable:
            raise IllustrisError(f"cannot fetch {what} from {url}: {res.reason or 'interrupted'} "
                                 f"({res.attempts} attempts)")
        return Path(dest)

    # -- batches -----------------------------------------------------------------------------------------------
    def run_batch(self, items: list[tuple[str, object]], work: Callable[[str, object], Fetched],
                  manifest_path: str | os.PathLike, what: str) -> list[Fetched]:
        """``work(object_id, item)`` for every item, ``concurrency`` at a time; returns their results in order.

        The manifest is rewritten periodically and at the end, whatever happens
        (:func:`deepmerge_da.data.batch.run_batch`); raises :class:`IllustrisError` for a refused key, an
        unreachable service or more than ``max_fail_fraction`` failed objects."""
        manifest_path = Path(manifest_path)
        results = [Fetched(oid, "", "pending") for oid, _ in items]

        def guarded(i: int) -> Fetched:
            oid, item = items[i]
            try:
                return work(oid, item)
            except OSError as exc:  # this object only: raised, it would cancel every other one
                return Fetched(oid, "", "failed", f"cannot store {what} of {oid}: {exc.strerror or exc}")

        t0 = time.monotonic()
        try:
            run_batch(results, range(len(items)), guarded, manifest_path=manifest_path, columns=MANIFEST_COLUMNS,
                      concurrency=self.concurrency, stop=self.stop, manifest_every_s=self.manifest_every_s,
                      progress={"desc": what, "unit": "obj", "mininterval": 2} if self.progress else None,
                      thread_name_prefix="illustris")
        except Terminated:
            log.warning("%s: interrupted by SIGTERM; the manifest %s says what is left", what, manifest_path)
            raise
        finally:
            self.sessions.close()
            self.stop.clear()
        self.raise_for_service()
        counts = Counter(r.status for r in results)
        log.info("%s: %d fetched, %d kept from an earlier run, %d failed of %d in %.1f s (manifest %s)", what,
                 counts["ok"], counts["skipped_existing"], counts["failed"], len(results), time.monotonic() - t0,
                 manifest_path)
        message = excess_failures(results, max_fail_fraction=self.max_fail_fraction, what="objects",
                                  source=self.base_url, manifest_path=manifest_path)
        if message is not None:
            raise IllustrisError(f"{what}: {message}")
        return results
