"""fetch.py, batch.py and http.py against a real HTTP server on 127.0.0.1 that injects faults
(tests/http_fault_server.py)."""
from __future__ import annotations

import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from deepmerge_da.data.fetch import cutout_url, fetch_cutouts
from deepmerge_da.data.http import ChecksumError, FetchError, fetch_file
from deepmerge_da.data.jpeg import check_jpeg, check_jpeg_file
from deepmerge_da.io.atomic import write_text_atomic
from helpers import REPO, copy_workflow, snakemake
from http_fault_server import FaultServer, Step, make_blank_jpeg, make_jpeg, ok

SRC = REPO / "src"
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
    for ra, oid in zip(sel["ra"], ids, strict=True):
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
    count = {oid: server.count(ra) for oid, ra in zip(ids, sel["ra"], strict=True)}
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
    for ra, oid in zip(sel["ra"], ids, strict=True):
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
    for ra, oid in zip(sel["ra"], ids, strict=True):
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
    assert [a - b for a, b in zip(after, before, strict=True)] == [0, 1, 1, 1, 0, 0]
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
from deepmerge_da.data.fetch import fetch_cutouts
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
        before = {oid: srv.count(ra) for oid, ra in zip(ids, sel["ra"], strict=True)}
        report = fetch_cutouts(sel, out, srv.base_url, **FAST)
        after = {oid: srv.count(ra) for oid, ra in zip(ids, sel["ra"], strict=True)}
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


# ---------------------------------------------------------------------------------------------
# a row that cannot be stored, redirects, file modes
# ---------------------------------------------------------------------------------------------

def test_row_that_cannot_be_stored_fails_alone(server, tmp_path):
    long_id = "g" * 300  # longer than a file name may be (255 bytes)
    ids = ["a", long_id, "b", "dir", "c"]
    sel = selection(ids)
    for k, ra in enumerate(sel["ra"]):
        server.script(ra, [ok(make_jpeg(k))])
    out = tmp_path / "c"
    (out / "nonmergers" / "dir.jpeg").mkdir(parents=True)  # a directory where the cutout goes: the rename fails
    report = fetch_cutouts(sel, out, server.base_url, max_fail_fraction=1.0, **FAST)
    man = read_manifest(out)
    assert man.loc[long_id, "status"] == "failed"
    assert man.loc[long_id, "reason"] == f"cannot store nonmergers/{long_id}.jpeg: File name too long"
    assert server.count(sel["ra"][1]) == 0  # failed before its request
    assert man.loc["dir", "status"] == "failed"
    assert man.loc["dir", "reason"] == "cannot store nonmergers/dir.jpeg: Is a directory"
    for k, oid in enumerate(ids):
        if oid in ("a", "b", "c"):
            assert man.loc[oid, "status"] == "ok"
            assert (out / "nonmergers" / f"{oid}.jpeg").read_bytes() == make_jpeg(k)
    assert report.n_ok == 3 and report.n_failed == 2 and temp_files(out) == []


def _redirect(location: str) -> Step:
    return Step(302, headers=(("Location", location),))


def test_cutout_redirect_to_another_host_is_refused_unless_allowed(tmp_path):
    sel = selection(["same_host", "other_host", "direct"])
    ra_same, ra_other, ra_direct = sel["ra"]
    out = tmp_path / "c"
    with FaultServer() as srv, FaultServer() as other:
        other_origin = f"http://127.0.0.1:{other.port}"
        srv.script(ra_same, [_redirect(cutout_url(srv.base_url, 50.0, 1.0))])
        srv.script(50.0, [ok(make_jpeg(1))])
        srv.script(ra_other, [_redirect(cutout_url(other.base_url, ra_other, 1.0))])
        other.script(ra_other, [ok(make_jpeg(2))])
        srv.script(ra_direct, [ok(make_jpeg(3))])
        report = fetch_cutouts(sel, out, srv.base_url, max_fail_fraction=1.0, **FAST)
        man = read_manifest(out)
        assert man.loc["other_host", "status"] == "failed"
        assert man.loc["other_host", "reason"] == (f"redirect to another host refused: {other_origin} "
                                                   f"(not in allow_redirect_hosts)")
        assert other.count(ra_other) == 0 and srv.count(ra_other) == 1  # refused at once, not retried
        assert not (out / "nonmergers" / "other_host.jpeg").exists()
        assert (out / "nonmergers" / "same_host.jpeg").read_bytes() == make_jpeg(1)  # same host: followed
        assert report.n_ok == 2

        report = fetch_cutouts(sel, out, srv.base_url, max_fail_fraction=0.0, allow_redirect_hosts=[other_origin],
                               **FAST)
        assert other.count(ra_other) == 1 and report.n_ok == 1 and report.n_skipped == 2
        assert (out / "nonmergers" / "other_host.jpeg").read_bytes() == make_jpeg(2)


def test_fetch_file_redirects_and_unverified_digest(tmp_path, caplog):
    payload = b"id,ra,dec\n1,10.0,1.0\n"
    digest = hashlib.sha256(payload).hexdigest()
    with FaultServer() as srv, FaultServer() as other:
        other_origin = f"http://127.0.0.1:{other.port}"
        moved = srv.serve_file("moved.csv", [_redirect(other.serve_file("cat.csv", [ok(payload)]))])
        renamed = srv.serve_file("renamed.csv", [Step(301, headers=(("Location", "/files/cat.csv"),))])
        srv.serve_file("cat.csv", [ok(payload)])
        dest = tmp_path / "dl" / "cat.csv"
        with pytest.raises(FetchError) as err:
            fetch_file(moved, dest, backoff_s=0.01)
        msg = str(err.value)
        assert moved in msg and f"redirect to another host refused: {other_origin}" in msg
        assert other.file_count("cat.csv") == 0 and srv.file_count("moved.csv") == 1
        assert not dest.parent.exists() or list(dest.parent.iterdir()) == []

        assert fetch_file(moved, dest, allow_redirect_hosts=[other_origin + "/"]).read_bytes() == payload
        assert other.file_count("cat.csv") == 1

        same = tmp_path / "dl" / "same.csv"
        with caplog.at_level("WARNING", logger="deepmerge_da.data.http"):
            fetch_file(renamed, same, record_sha256=True)  # a relative, same-host redirect: followed
        assert same.read_bytes() == payload and srv.file_count("cat.csv") == 1
    sidecar = same.with_name("same.csv.sha256")
    assert sidecar.read_text() == f"{digest}  same.csv\n"
    assert f"{same}" in caplog.text and "unverified" in caplog.text and digest in caplog.text
    assert not dest.with_name("cat.csv.sha256").exists()  # only when asked
    with pytest.raises(ValueError, match="allow_redirect_hosts"):
        fetch_file(renamed, same, overwrite=True, allow_redirect_hosts=["ftp.example.org"])


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_honour_the_umask(server, tmp_path, umask):
    sel = selection(["u"])
    server.script(sel["ra"][0], [ok(make_jpeg(5))])
    url = server.serve_file("cat.csv", [ok(b"id,ra,dec\n")])
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "text.txt", "x")
        fetch_cutouts(sel, tmp_path / "c", server.base_url, **FAST)
        fetch_file(url, tmp_path / "cat.csv", record_sha256=True)
    finally:
        os.umask(old)
    written = [tmp_path / "text.txt", tmp_path / "c/nonmergers/u.jpeg", tmp_path / "c/manifest.csv",
               tmp_path / "c/catalogue.csv", tmp_path / "cat.csv", tmp_path / "cat.csv.sha256"]
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {p.name: oct(0o666 & ~umask)
                                                                               for p in written}


@pytest.mark.slow
def test_catalogue_rule_allows_listed_redirect_hosts_and_records_unverified_digests(tmp_path):
    wf = copy_workflow(tmp_path)
    darg = b"ra1,dec1,stage\n10.0,1.0,3\n"
    gz1 = b"ID,RAdeg,DEdeg,zsp,P_MG\n1,20.0,1.0,0.05,0.0\n"
    targets = ["results/data/sdss/darg_mergers.csv", "results/data/sdss/nonmergers.csv"]
    with FaultServer() as srv, FaultServer() as mirror:
        mirror_origin = f"http://127.0.0.1:{mirror.port}"
        catalogues = {"darg_url": srv.serve_file("darg.csv", [_redirect(mirror.serve_file("darg.csv", [ok(darg)]))]),
                      "darg_format": "csv", "gz1_url": srv.serve_file("gz1.csv", [ok(gz1)]),
                      "gz1_sha256": hashlib.sha256(gz1).hexdigest()}
        config = {"data": {"seed": 1, "pairs": {"sim2real": {"source": "remote", "filters": ["i", "r", "g"],
                                                             "synthetic": {}}},
                           "remote": {"catalogues": catalogues}}}
        (wf / "c.yaml").write_text(yaml.safe_dump(config))
        refused = snakemake(wf, *targets, "--configfile", "c.yaml")
        assert refused.returncode != 0
        log = (wf / "logs/fetch/catalogues.log").read_text()
        assert f"redirect to another host refused: {mirror_origin}" in log and catalogues["darg_url"] in log
        assert mirror.file_count("darg.csv") == 0

        catalogues["allow_redirect_hosts"] = [mirror_origin]
        (wf / "c.yaml").write_text(yaml.safe_dump(config))
        run = snakemake(wf, *targets, "--configfile", "c.yaml")
        assert run.returncode == 0, run.stderr[-3000:]
    sdss = wf / "results/data/sdss"
    assert (sdss / "darg_mergers.csv").read_bytes() == darg and (sdss / "nonmergers.csv").read_bytes() == gz1
    # no darg_sha256 configured: the digest is recorded beside the file, with a warning; gz1 was verified
    digest = hashlib.sha256(darg).hexdigest()
    assert (sdss / "darg_mergers.csv.sha256").read_text() == f"{digest}  darg_mergers.csv\n"
    assert not (sdss / "nonmergers.csv.sha256").exists()
    log = (wf / "logs/fetch/catalogues.log").read_text()
    assert "WARNING" in log and "unverified" in log and digest in log
