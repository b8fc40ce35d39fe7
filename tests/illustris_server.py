"""A stand-in for the Illustris web API on 127.0.0.1, with injected faults, and the files it serves.

It answers as the API reference (https://www.illustris-project.org/data/docs/api/) describes, under
``/api/<simulation>/``: ``snapshots/`` (a list of ``{"number", "redshift", "url"}``), ``snapshots/<n>/subhalos/``
(the catalogue: ``{"count", "next", "previous", "results": [{"id", "url"}]}``, paged by ``limit`` / ``offset``,
filtered by ``mass_stars__gt``, ``next`` an absolute link or null), ``snapshots/<n>/subhalos/<id>/`` (details with
``desc_snap``, ``desc_sfid``), ``.../sublink/full.hdf5`` (a SubLink tree, :func:`sublink_tree`) and
``.../stellar_mocks/broadband.fits`` (a SUNRISE file, :func:`sunrise_fits`).  A request without the right key in
the ``api-key`` header gets HTTP 401.  Every request is counted by path (query included) and by status; each
path may be given a script of :class:`~http_fault_server.Step` s (request ``n`` of the path uses step
``min(n, len - 1)``), the last one usually the real answer; :meth:`fail_first` puts faults before any answer.
"""
from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import h5py
import numpy as np
from astropy.io import fits
from astropy.table import Table

from http_fault_server import Step

KEY_HEADER = "api-key"


# -- the files ---------------------------------------------------------------------------------------------------

def sublink_tree(nodes: list[tuple]) -> bytes:
    """A SubLink HDF5 tree (the fields deepmerge_da.data.merger_history reads, and MainLeafProgenitorID) from
    ``nodes`` = ``(key, snap, subfind_id, stellar_mass, descendant_key)`` in depth-first order (the root first,
    a node's first progenitor right after it); a node's progenitors are the nodes whose descendant it is, the first
    listed being its first progenitor."""
    ids = {node[0]: 1000 + i for i, node in enumerate(nodes)}
    progenitors: dict = {}
    for key, *_, desc in nodes:
        if desc is not None:
            progenitors.setdefault(desc, []).append(key)
    n = len(nodes)
    f = {name: np.full(n, -1, dtype=np.int64) for name in ("SubhaloID", "DescendantID", "FirstProgenitorID",
                                                          "NextProgenitorID", "MainLeafProgenitorID")}
    f["SnapNum"], f["SubfindID"] = np.zeros(n, np.int16), np.zeros(n, np.int64)
    f["SubhaloMassType"] = np.zeros((n, 6), np.float32)
    for i, (key, snap, sfid, mass, desc) in enumerate(nodes):
        f["SubhaloID"][i], f["SnapNum"][i], f["SubfindID"][i] = ids[key], snap, sfid
        f["SubhaloMassType"][i, 4], f["SubhaloMassType"][i, 1] = mass, 10 * mass
        if desc is not None:
            f["DescendantID"][i] = ids[desc]
            siblings = progenitors[desc]
            k = siblings.index(key)
            if k + 1 < len(siblings):
                f["NextProgenitorID"][i] = ids[siblings[k + 1]]
        if key in progenitors:
            f["FirstProgenitorID"][i] = ids[progenitors[key][0]]
        leaf = key
        while leaf in progenitors:
            leaf = progenitors[leaf][0]
        f["MainLeafProgenitorID"][i] = ids[leaf]
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h:
        for name, values in f.items():
            h[name] = values
    return buf.getvalue()


def sunrise_fits(filters: list[str], cameras: int, *, npix: int = 32, fov_kpc: float = 40.0, merger: bool = False,
                 seed: int = 0) -> bytes:
    """A SUNRISE broadband file in the layout of deepmerge_da.data.sunrise: one or (a merger) two exponential
    discs of ~22 mag/arcsec^2 at their centre, in L_lambda (W/m/m^2/sr), seen by ``cameras`` cameras."""
    rng = np.random.default_rng(seed)
    lambda_eff = np.linspace(4e-7, 2e-6, len(filters))
    table = fits.table_to_hdu(Table({"filter": filters, "lambda_eff": lambda_eff}))
    table.name = "FILTERS"
    hdus = [fits.PrimaryHDU(), table]
    y, x = np.mgrid[0:npix, 0:npix] - (npix - 1) / 2
    for camera in range(cameras):
        light = np.exp(-np.hypot(x - rng.normal(0, 1), y - rng.normal(0, 1)) / rng.uniform(2, 4))
        if merger:
            dx, dy = rng.uniform(5, 9) * rng.choice([-1, 1], 2)
            light += rng.uniform(0.3, 0.9) * np.exp(-np.hypot(x - dx, y - dy) / 2)
        # I_nu ~ 2.5e5 Jy/sr (22 mag/arcsec^2) at the centre: I_lambda = I_nu c / lambda^2 / 1e26
        cube = np.stack([2.5e5 * 3e8 / lam ** 2 / 1e26 * light for lam in lambda_eff]).astype(np.float32)
        hdus.append(fits.ImageHDU(cube, name=f"CAMERA{camera}-BROADBAND-NONSCATTER"))
        parameters = fits.ImageHDU(name=f"CAMERA{camera}-PARAMETERS")
        parameters.header["HIERARCH LINEAR_FOV"] = fov_kpc  # a keyword of more than 8 characters
        hdus.append(parameters)
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


# -- the server --------------------------------------------------------------------------------------------------

class IllustrisServer:
    """``with IllustrisServer(key) as api: api.snapshots = {...}; api.catalogue[68] = [...]; api.serve(path, ...)``.

    ``snapshots``: {number: redshift}; ``catalogue``: {snap: [(subhalo id, mass_stars in 1e10 Msun/h)]};
    :meth:`serve` a path below ``/api/<simulation>/`` (query included, as the client sends it) with a body or steps.
    """

    def __init__(self, key: str, simulation: str = "Illustris-1", delay_s: float = 0.0):
        self.key, self.simulation, self.delay_s = key, simulation, delay_s
        self.snapshots: dict[int, float] = {}
        self.catalogue: dict[int, list[tuple[int, float]]] = {}
        self.scripts: dict[str, list[Step]] = {}
        self.faults: dict[str, list[Step]] = {}
        self.requests: Counter = Counter()  # path -> requests
        self.served: Counter = Counter()  # path -> 200 answers
        self.headers_seen: list[dict] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/api/"

    def path(self, path: str) -> str:
        return f"/api/{self.simulation}/{path}"

    def serve(self, path: str, body: bytes | list[Step], content_type: str = "application/octet-stream") -> None:
        self.scripts[self.path(path)] = body if isinstance(body, list) else [Step(200, body, content_type=content_type)]

    def serve_json(self, path: str, value) -> None:
        self.scripts[self.path(path)] = [Step(200, json.dumps(value).encode(), content_type="application/json")]

    def fail_first(self, path: str, *steps: Step) -> None:
        """The first requests of ``path`` (query included) get ``steps``, the later ones the answer."""
        self.faults[self.path(path)] = list(steps)

    def _answer(self, path: str, query: dict) -> Step:
        base = self.path("")
        if path == base + "snapshots/":
            body = [{"number": n, "redshift": z, "url": f"{self.base_url}{self.simulation}/snapshots/{n}/"}
                    for n, z in sorted(self.snapshots.items())]
            return Step(200, json.dumps(body).encode(), content_type="application/json")
        parts = path[len(base):].split("/")
        if len(parts) == 4 and parts[0] == "snapshots" and parts[2] == "subhalos" and parts[3] == "":
            snap = int(parts[1])
            cut = float(query.get("mass_stars__gt", ["-1"])[0])
            rows = sorted(r for r in self.catalogue.get(snap, []) if r[1] > cut)
            limit, offset = int(query.get("limit", ["100"])[0]), int(query.get("offset", ["0"])[0])
            page = rows[offset:offset + limit]
            here = f"{self.base_url}{self.simulation}/snapshots/{snap}/subhalos/"
            nxt = f"{here}?limit={limit}&offset={offset + limit}" if offset + limit < len(rows) else None
            body = {"count": len(rows), "next": nxt, "previous": None,
                    "results": [{"id": i, "url": f"{here}{i}/"} for i, _ in page]}
            return Step(200, json.dumps(body).encode(), content_type="application/json")
        return Step(404, b'{"detail": "Not found."}', content_type="application/json")

    def start(self) -> IllustrisServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                url = urlsplit(self.path)
                with server._lock:
                    n = server.requests[self.path]
                    server.requests[self.path] += 1
                    server.headers_seen.append(dict(self.headers))
                if self.headers.get(KEY_HEADER) != server.key:
                    step = Step(401, b'{"detail": "Authentication credentials were not provided."}',
                                content_type="application/json")
                elif n < len(server.faults.get(self.path, ())):
                    step = server.faults[self.path][n]
                elif self.path in server.scripts:
                    steps = server.scripts[self.path]
                    step = steps[min(n - len(server.faults.get(self.path, ())), len(steps) - 1)]
                else:
                    step = server._answer(url.path, parse_qs(url.query))
                if step.delay_s + server.delay_s:
                    time.sleep(step.delay_s + server.delay_s)
                if step.status == 200:
                    with server._lock:
                        server.served[self.path] += 1
                try:
                    self.send_response(step.status)
                    self.send_header("Content-Type", step.content_type)
                    length = len(step.body) if step.content_length is None else step.content_length
                    self.send_header("Content-Length", str(length))
                    for k, v in step.headers:
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(step.body)
                    if length != len(step.body):
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> IllustrisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
