"""fetch.py against a real HTTP server on 127.0.0.1 that injects faults (tests/http_fault_server.py)."""
from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from deepmerge_da.fetch import (ChecksumError, FetchError, check_jpeg, check_jpeg_file, cutout_url,
                                fetch_cutouts, fetch_file)
from http_fault_server import FaultServer, Step, make_blank_jpeg, make_jpeg, ok

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = dict(concurrency=4, rate_per_s=None, timeout_s=0.5, max_retries=2, backoff_s=0.02, progress=False)


def selection(ids, subdir="nonmergers", ra0=10.0):
    """A selection table; object i has ra = ra0 + 0.01 * i (the server tells objects apart by ra)."""
    return pd.DataFrame({"object_id": [str(i) for i in ids], "ra": [ra0 + 0.01 * k for k in range(len(ids))],
                         "dec": [1.0] * len(ids), "label": [0] * len(ids), "subdir": [subdir] * len(ids),
                         "z": [0.05] * len(ids)})


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and (p.name.endswith(".part") or p.name.startswith("."))]


def read_manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv", dtype={"object_id": str}, keep_default_na=False).set_index("object_id")


@pytest.fixture
def server():
    with FaultServer() as srv:
        yield srv


# ---------------------------------------------------------------------------------------------

def test_check_jpeg_reasons():
    good = make_jpeg(1)
    assert check_jpeg(good, (128, 128)).ok
    assert check_jpeg(b"").reason == "empty body"
    assert check_jpeg(b"<html><body>Error</body></html>").reason == "not a jpeg"
    assert check_jpeg(good[: len(good) // 2]).reason == "truncated jpeg"
    assert check_jpeg(make_blank_jpeg()).reason == "blank image"
    assert check_jpeg(make_blank_jpeg(colour=(12, 40, 200))).reason == "blank image"
    assert check_jpeg(make_jpeg(2, 64), (128, 128)).reason == "wrong size 64x64 (expected 128x128)"
    # cut inside the headers, with an end-of-image marker appended: the decoder still notices
    assert check_jpeg(good[:600] + b"\xff\xd9").reason == "truncated jpeg"
    assert check_jpeg(good[:20] + b"\xff\xd9").reason == "corrupt jpeg: unreadable header"
    buf = io.BytesIO()
    Image.new("L", (128, 128)).save(buf, "JPEG")
    assert not check_jpeg(buf.getvalue()).ok
    chk = check_jpeg(good, keep_image=True)
    assert chk.image.mode == "RGB" and chk.image.size == (128, 128)


def test_cutout_url():
    url = cutout_url("https://x/getjpeg", 1.5, -2.25, 0.396127, 128, 128)
    assert url == "https://x/getjpeg?ra=1.5000000&dec=-2.2500000&scale=0.396127&width=128&height=128"


def test_faults_are_retried_or_reported(server, tmp_path):
    good = {f"ok{i}": make_jpeg(i) for i in range(5)}
    truncated = make_jpeg(99)
    scripts = {
        **{k: [ok(v)] for k, v in good.items()},
        "timeout_once": [ok(make_jpeg(10), delay_s=1.5), ok(make_jpeg(10))],
        "fail_twice": [Step(500), Step(503), ok(make_jpeg(11))],
        "throttled": [Step(429, headers=(("Retry-After", "0"),)), ok(make_jpeg(12))],
        "slow_valid": [ok(make_jpeg(13), delay_s=0.3)],
        "dropped": [Step(200, truncated[:500], content_length=len(truncated)), ok(truncated)],
        "always_500": [Step(500)],
        "always_timeout": [ok(make_jpeg(15), delay_s=1.0)],
        "not_found": [Step(404, b"not found", content_type="text/plain")],
        "empty": [ok(b"")],
        "truncated": [ok(truncated[: len(truncated) * 2 // 3])],
        "blank": [ok(make_blank_jpeg())],
        "html": [Step(200, b"<html>service error</html>", content_type="text/html")],
        "small": [ok(make_jpeg(14, 64))],
    }
    ids = list(scripts)
    sel = selection(ids)
    for ra, oid in zip(sel["ra"], ids):
        server.script(ra, scripts[oid])
    out = tmp_path / "cutouts"
    t0 = time.monotonic()
    report = fetch_cutouts(sel, out, server.base_url, max_fail_fraction=1.0, **FAST)
    assert time.monotonic() - t0 < 20

    valid = [*good, "timeout_once", "fail_twice", "throttled", "slow_valid", "dropped"]
    expected_reason = {"always_500": "http 500 after 2 retries", "always_timeout": "timeout after 2 retries",
                       "not_found": "http 404", "empty": "empty body",
                       "truncated": "truncated jpeg", "blank": "blank image", "html": "not a jpeg",
                       "small": "wrong size 64x64 (expected 128x128)"}
    man = read_manifest(out)
    assert sorted(man.index) == sorted(ids) and len(man) == len(ids)
    for oid in valid:
        assert man.loc[oid, "status"] == "ok", (oid, man.loc[oid].to_dict())
        f = out / "nonmergers" / f"{oid}.jpeg"
        assert check_jpeg_file(f, (128, 128)).ok
        assert int(man.loc[oid, "bytes"]) == f.stat().st_size
    assert (out / "nonmergers" / "ok3.jpeg").read_bytes() == good["ok3"]
    for oid, reason in expected_reason.items():
        assert man.loc[oid, "status"] == "failed"
        assert man.loc[oid, "reason"] == reason, oid
        assert not (out / "nonmergers" / f"{oid}.jpeg").exists()
    # server-side request counts: retried where it should be, once where it should not
    count = {oid: server.count(ra) for oid, ra in zip(ids, sel["ra"])}
    assert count["not_found"] == 1 and int(man.loc["not_found", "attempts"]) == 1
    assert count["always_500"] == 3 and int(man.loc["always_500", "attempts"]) == 3
    assert count["always_timeout"] == 3 and int(man.loc["always_timeout", "attempts"]) == 3
    assert count["fail_twice"] == 3 and int(man.loc["fail_twice", "attempts"]) == 3
    assert count["timeout_once"] == 2 and count["throttled"] == 2 and count["dropped"] == 2
    for oid in [*good, "slow_valid", "empty", "truncated", "blank", "html", "small"]:
        assert count[oid] == 1, oid
    # exactly one file per valid object, nothing else, no temporary files
    files = sorted(p.name for p in (out / "nonmergers").iterdir())
    assert files == sorted(f"{oid}.jpeg" for oid in valid)
    assert temp_files(out) == []
    assert report.n_ok == len(valid) and report.n_failed == len(expected_reason)
    assert report.manifest_path == out / "manifest.csv"
    cat = pd.read_csv(out / "catalogue.csv", dtype={"object_id": str})
    assert list(cat["object_id"]) == ids and {"ra", "dec", "label", "subdir", "z"} <= set(cat.columns)


def test_failure_fraction_bound(server, tmp_path):
    ids = [f"g{i}" for i in range(9)] + ["missing"]
    sel = selection(ids)
    for ra, oid in zip(sel["ra"], ids):
        server.script(ra, [Step(404)] if oid == "missing" else [ok(make_jpeg(int(oid[1:])))])
    out = tmp_path / "c"
    with pytest.raises(FetchError) as err:
        fetch_cutouts(sel, out, server.base_url, max_fail_fraction=0.05, **FAST)
    msg = str(err.value)
    assert server.base_url in msg and str(out / "manifest.csv") in msg
    assert "1 of 10" in msg and "10.0%" in msg
    assert err.value.report.n_failed == 1
    man = read_manifest(out)
    assert man.loc["missing", "reason"] == "http 404" and (man["status"] == "ok").sum() == 9
    # under the bound: passes; the valid files are kept, not requested again; the 404 is tried again
    before = {ra: server.count(ra) for ra in sel["ra"]}
    report = fetch_cutouts(sel, out, server.base_url, max_fail_fraction=0.2, **FAST)
    assert report.n_skipped == 9 and report.n_failed == 1
    for ra, oid in zip(sel["ra"], ids):
        assert server.count(ra) == before[ra] + (1 if oid == "missing" else 0)
    assert set(read_manifest(out)["status"]) == {"skipped_existing", "failed"}


def test_resume_refetches_invalid_and_removes_stale_temp_files(server, tmp_path):
    ids = [str(i) for i in range(6)]
    sel = selection(ids, subdir="mergers")
    for k, ra in enumerate(sel["ra"]):
        server.script(ra, [ok(make_jpeg(k))])
    out = tmp_path / "c"
    fetch_cutouts(sel, out, server.base_url, **FAST)
    d = out / "mergers"
    (d / "1.jpeg").write_bytes((d / "1.jpeg").read_bytes()[:300])      # a partial file under the final name
    (d / "2.jpeg").unlink()                                             # lost
    (d / "3.jpeg").write_bytes(make_blank_jpeg())                        # blank
    (d / ".4.jpeg.abc123.part").write_bytes(make_jpeg(4))               # left by a killed run
    before = [server.count(ra) for ra in sel["ra"]]
    report = fetch_cutouts(sel, out, server.base_url, **FAST)
    after = [server.count(ra) for ra in sel["ra"]]
    assert [a - b for a, b in zip(after, before)] == [0, 1, 1, 1, 0, 0]
    man = read_manifest(out)
    assert list(man["status"]) == ["skipped_existing", "ok", "ok", "ok", "skipped_existing", "skipped_existing"]
    assert report.n_ok == 3 and report.n_skipped == 3
    assert sorted(p.name for p in d.iterdir()) == [f"{i}.jpeg" for i in ids]
    assert all(check_jpeg_file(d / f"{i}.jpeg", (128, 128)).ok for i in ids)


def test_global_rate_limit(server, tmp_path):
    sel = selection([f"r{i}" for i in range(8)])
    for k, ra in enumerate(sel["ra"]):
        server.script(ra, [ok(make_jpeg(k))])
    fetch_cutouts(sel, tmp_path / "c", server.base_url, **{**FAST, "rate_per_s": 20.0, "concurrency": 4})
    starts = sorted(t for t, _ in server.times)
    assert len(starts) == 8
    assert starts[-1] - starts[0] >= 0.8 * 7 / 20.0  # 8 request starts at <= 20 per second


def test_bad_positions_fail_without_request(server, tmp_path):
    sel = selection(["a", "b"])
    sel.loc[1, "dec"] = float("nan")
    server.script(sel.loc[0, "ra"], [ok(make_jpeg(1))])
    report = fetch_cutouts(sel, tmp_path / "c", server.base_url, max_fail_fraction=1.0, **FAST)
    assert report.n_ok == 1 and report.n_failed == 1
    assert read_manifest(tmp_path / "c").loc["b", "reason"].startswith("bad position")
    assert len(server.times) == 1
    with pytest.raises(ValueError, match="more than once"):
        fetch_cutouts(pd.concat([sel, sel]), tmp_path / "d", server.base_url, **FAST)


_CHILD = """
import sys
import pandas as pd
from deepmerge_da.fetch import fetch_cutouts
sel = pd.read_csv(sys.argv[1], dtype={"object_id": str})
fetch_cutouts(sel, sys.argv[2], sys.argv[3], concurrency=2, rate_per_s=None, timeout_s=10,
              max_retries=0, backoff_s=0.01, progress=False, manifest_every_s=0.2)
"""


def _child(sel_csv: Path, out: Path, base_url: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(sel_csv), str(out), base_url], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_files(d: Path, n: int, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if d.is_dir() and len(list(d.glob("*.jpeg"))) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"child exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no {n} files in {d} after {timeout_s} s")


def test_kill_midway_then_rerun(tmp_path):
    ids = [str(i) for i in range(16)]
    sel = selection(ids)
    sel_csv = tmp_path / "sel.csv"
    sel.to_csv(sel_csv, index=False)
    out = tmp_path / "c"
    d = out / "nonmergers"
    with FaultServer(delay_s=0.25) as srv:
        for k, ra in enumerate(sel["ra"]):
            srv.script(ra, [ok(make_jpeg(k))])
        proc = _child(sel_csv, out, srv.base_url)
        try:
            _wait_for_files(d, 4, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        landed = sorted(p.stem for p in d.glob("*.jpeg"))
        assert 4 <= len(landed) < len(ids)
        # nothing under a final name is partial: every landed file is a complete, valid image
        for oid in landed:
            assert (d / f"{oid}.jpeg").read_bytes() == make_jpeg(int(oid))
        # simulate what else a crash can leave: a stale temp file, and a partial file under a final name
        missing = [i for i in ids if i not in landed]
        (d / f".{missing[0]}.jpeg.dead.part").write_bytes(make_jpeg(int(missing[0]))[:500])
        (d / f"{missing[1]}.jpeg").write_bytes(make_jpeg(int(missing[1]))[:700])
        srv.delay_s = 0.0
        before = {oid: srv.count(ra) for oid, ra in zip(ids, sel["ra"])}
        report = fetch_cutouts(sel, out, srv.base_url, **FAST)
        after = {oid: srv.count(ra) for oid, ra in zip(ids, sel["ra"])}
    for oid in ids:
        assert after[oid] - before[oid] == (0 if oid in landed else 1), oid
        assert (d / f"{oid}.jpeg").read_bytes() == make_jpeg(int(oid))
    assert sorted(p.name for p in d.iterdir()) == sorted(f"{i}.jpeg" for i in ids)
    assert temp_files(out) == []
    assert report.n_skipped == len(landed) and report.n_ok == len(ids) - len(landed) and report.n_failed == 0


def test_sigterm_writes_manifest(tmp_path):
    ids = [str(i) for i in range(12)]
    sel = selection(ids)
    sel_csv = tmp_path / "sel.csv"
    sel.to_csv(sel_csv, index=False)
    out = tmp_path / "c"
    with FaultServer(delay_s=0.25) as srv:
        for k, ra in enumerate(sel["ra"]):
            srv.script(ra, [ok(make_jpeg(k))])
        proc = _child(sel_csv, out, srv.base_url)
        try:
            _wait_for_files(out / "nonmergers", 2, proc)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    assert rc == 128 + signal.SIGTERM
    man = read_manifest(out)
    assert len(man) == len(ids)
    assert "pending" in set(man["status"]) and "ok" in set(man["status"])
    for oid in man.index[man["status"] == "ok"]:
        assert check_jpeg_file(out / "nonmergers" / f"{oid}.jpeg", (128, 128)).ok
    assert temp_files(out) == []


# ---------------------------------------------------------------------------------------------

def test_fetch_file_checksum(server, tmp_path):
    payload = os.urandom(200_000)
    digest = hashlib.sha256(payload).hexdigest()
    url = server.serve_file("weights.bin", [Step(503), Step(200, payload, content_type="application/octet-stream")])
    dest = tmp_path / "dl" / "weights.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        fetch_file(url, dest, sha256=wrong, backoff_s=0.01, timeout_s=5)
    msg = str(err.value)
    assert str(dest) in msg and wrong in msg and digest in msg
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert server.file_count("weights.bin") == 2  # the 503 was retried
    assert fetch_file(url, dest, sha256=digest, backoff_s=0.01, timeout_s=5) == dest
    assert dest.read_bytes() == payload
    n = server.file_count("weights.bin")
    fetch_file(url, dest, sha256=digest)  # present and matching: not downloaded again
    assert server.file_count("weights.bin") == n
    assert list(dest.parent.iterdir()) == [dest]


def test_fetch_file_404_is_not_retried(server, tmp_path):
    url = server.serve_file("gone.bin", [Step(404)])
    with pytest.raises(FetchError, match="http 404") as err:
        fetch_file(url, tmp_path / "gone.bin", backoff_s=0.01)
    assert url in str(err.value)
    assert server.file_count("gone.bin") == 1 and list(tmp_path.iterdir()) == []
