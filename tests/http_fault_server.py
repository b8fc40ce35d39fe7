"""A real HTTP server on 127.0.0.1 that serves JPEG cutouts and injects faults per object.

Objects are told apart by the ``ra`` query parameter (as the SkyServer getjpeg endpoint is
called), rounded to 4 decimals.  Each object has a script of steps; request number ``n`` of an
object uses step ``min(n, len(steps) - 1)``.  A step is a :class:`Step`: an optional delay, then a
status code and a body.  Every request is counted and timestamped server-side.

Files for ``fetch_file`` are served at ``/files/<name>``, with their own scripts.
"""
from __future__ import annotations

import io
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Step:
    status: int = 200
    body: bytes = b""
    delay_s: float = 0.0
    content_type: str = "image/jpeg"
    headers: tuple[tuple[str, str], ...] = ()
    content_length: int | None = None  # announce this many bytes, send ``body``, close (a dropped connection)


def make_jpeg(seed: int, size: int | tuple[int, int] = 128, quality: int = 90) -> bytes:
    """A valid, structured RGB JPEG: a noisy sky with a random elliptical 'galaxy' and stars."""
    w, h = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(float)
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    q, th = rng.uniform(0.4, 1.0), rng.uniform(0, np.pi)
    dx, dy = x - cx, y - cy
    u, v = dx * np.cos(th) + dy * np.sin(th), (-dx * np.sin(th) + dy * np.cos(th)) / q
    galaxy = np.exp(-np.hypot(u, v) / rng.uniform(3, 10))
    img = 10 + rng.normal(0, 4, (h, w, 3))
    img += 200 * galaxy[..., None] * rng.uniform(0.5, 1.0, 3)
    for _ in range(3):
        sx, sy = rng.uniform(0, w), rng.uniform(0, h)
        img += 150 * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / 2.0)[..., None]
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_blank_jpeg(size: int = 128, colour=(0, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "JPEG", quality=75)
    return buf.getvalue()


def ok(body: bytes, delay_s: float = 0.0) -> Step:
    return Step(200, body, delay_s)


class FaultServer:
    """``with FaultServer() as srv: srv.script(ra, [Step...]); url = srv.base_url``."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s  # added to every response (a slow server)
        self._scripts: dict[str, list[Step]] = {}
        self._files: dict[str, list[Step]] = {}
        self.counts: Counter = Counter()
        self.times: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration ------------------------------------------------------------------------
    @staticmethod
    def key(ra: float) -> str:
        return f"{float(ra):.4f}"

    def script(self, ra: float, steps: list[Step]) -> None:
        self._scripts[self.key(ra)] = list(steps)

    def serve_file(self, name: str, steps: list[Step]) -> str:
        self._files[name] = list(steps)
        return f"http://127.0.0.1:{self.port}/files/{name}"

    def count(self, ra: float) -> int:
        with self._lock:
            return self.counts[self.key(ra)]

    def file_count(self, name: str) -> int:
        with self._lock:
            return self.counts[f"file:{name}"]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/SkyServerWS/ImgCutout/getjpeg"

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FaultServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                parsed = urlparse(self.path)
                if parsed.path.startswith("/files/"):
                    key = "file:" + parsed.path[len("/files/"):]
                    steps = server._files.get(key[5:])
                else:
                    qs = parse_qs(parsed.query)
                    try:
                        key = server.key(float(qs["ra"][0]))
                    except (KeyError, ValueError):
                        key = "bad-request"
                    steps = server._scripts.get(key)
                with server._lock:
                    n = server.counts[key]
                    server.counts[key] += 1
                    server.times.append((time.monotonic(), key))
                step = Step(404, b"no such object", content_type="text/plain") if not steps else \
                    steps[min(n, len(steps) - 1)]
                delay = step.delay_s + server.delay_s
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(step.status)
                    self.send_header("Content-Type", step.content_type)
                    length = len(step.body) if step.content_length is None else step.content_length
                    self.send_header("Content-Length", str(length))
                    for k, v in step.headers:
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(step.body)
                    self.wfile.flush()
                    if length != len(step.body):
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    pass  # the client gave up (timeout): expected

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
