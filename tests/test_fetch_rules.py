"""The download rules (workflow/rules/fetch.smk) run by real Snakemake against a real HTTP server on 127.0.0.1.

tests/http_fault_server.py serves the catalogues (written here in the Darg / Galaxy Zoo 1 formats that
catalogues.py reads), the JPEG cutouts and the published arrays, and injects faults: HTTP 500/503, a 404,
timeouts, an empty body, a truncated JPEG, a blank image, an HTML page, a slow response.  Only the
fetch/import outputs are built (not the whole DAG), to stay fast.  published.py is also tested directly.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from PIL import Image

from deepmerge_da.config import ConfigError, validate_config
from deepmerge_da.data.jpeg import check_jpeg_file
from deepmerge_da.data.published import PublishedDataError, detect_layout, fits_to_image_set, npy_to_image_set
from helpers import REPO, copy_workflow, snakemake
from http_fault_server import FaultServer, Step, make_blank_jpeg, make_jpeg, ok

TARGET = "results/data/sim2real/raw/target.h5"
SDSS = "results/data/sdss"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".part")]


# ---------------------------------------------------------------------------------------------
# the remote SDSS target: catalogues -> selection -> cutouts -> raw HDF5
# ---------------------------------------------------------------------------------------------

TRUNCATED = make_jpeg(99)
# what the server does for each object; None: a valid cutout (make_jpeg(seed)) at once
FAULTS = {
    "fail_twice": ([Step(500), Step(503)], None),                 # retried, then valid
    "timeout_once": ([ok(make_jpeg(7), delay_s=2.0)], None),      # retried, then valid
    "slow": ("slow", None),                                      # 0.3 s, under the 0.5 s timeout
    "not_found": ([Step(404, b"not found", content_type="text/plain")], "http 404"),
    "empty": ([ok(b"")], "empty body"),
    "truncated": ([ok(TRUNCATED[: len(TRUNCATED) * 2 // 3])], "truncated jpeg"),
    "blank": ([ok(make_blank_jpeg())], "blank image"),
    "always_timeout": ([ok(make_jpeg(8), delay_s=2.0)] * 99, "timeout after 2 retries"),
    "always_500": ([Step(500)] * 99, "http 500 after 2 retries"),
    "html": ([Step(200, b"<html>error</html>", content_type="text/html")], "not a jpeg"),
}
# Darg rows (1-based row number = object id): (stage, dec, fault)
DARG = [(1, 1.0, None), (3, 1.0, None), (3, 1.0, "fail_twice"), (3, 1.0, "timeout_once"), (2, 1.0, None),
        (3, 95.0, None), (3, 1.0, "not_found"), (3, 1.0, "empty"), (3, 1.0, "truncated"), (3, 1.0, "blank"),
        (3, 1.0, "slow"), (3, 1.0, "always_timeout"), (3, 1.0, None), (3, 1.0, None)]
# GZ1 rows: ID -> fault; 103 (z), 104 (f_m) fail the cuts, 105 has no position, 106 repeats galaxy 101
GZ1_FAULTS = {111: "html", 114: "always_500", 118: "fail_twice"}  # among the 10 drawn with data.seed 1


def darg_ra(i: int) -> float:
    return 150.0 + 0.01 * i


def gz1_ra(oid: int) -> float:
    return 200.0 + 0.01 * (oid - 100)


def write_catalogues() -> tuple[bytes, bytes]:
    t = Table({"ra1": [darg_ra(i) for i in range(1, len(DARG) + 1)], "dec1": [d for _, d, _ in DARG],
               "specz1": [0.05] * len(DARG), "stage": np.array([s for s, _, _ in DARG], np.int16),
               "vote1": [0.6] * len(DARG)})
    buf = io.BytesIO()
    t.write(buf, format="fits")
    ids = list(range(101, 121))
    gz1 = pd.DataFrame({"ID": ids, "RAdeg": [gz1_ra(i) for i in ids], "DEdeg": [2.0] * len(ids),
                        "zsp": [0.2 if i == 103 else 0.05 for i in ids],
                        "P_MG": [0.5 if i == 104 else 0.05 for i in ids],
                        "SDSS": ["J101" if i == 106 else f"J{i}" for i in ids]})
    gz1["RAdeg"] = gz1["RAdeg"].astype(object)
    gz1.loc[gz1["ID"] == 105, "RAdeg"] = ""
    gz1.loc[gz1["ID"] == 106, ["RAdeg"]] = gz1_ra(101)
    return buf.getvalue(), gz1.to_csv(index=False).encode()


def script_objects(srv: FaultServer) -> dict[str, tuple[float, str | None]]:
    """Script every catalogue object on the server; returns 'subdir/id' -> (ra, expected failure reason)."""
    objects = {}
    rows = [(f"mergers/{i}", darg_ra(i), f) for i, (_, _, f) in enumerate(DARG, start=1)]
    rows += [(f"nonmergers/{i}", gz1_ra(i), GZ1_FAULTS.get(i)) for i in range(101, 121)]
    for k, (name, ra, fault) in enumerate(rows):
        good = make_jpeg(1000 + k)
        if fault is None:
            steps, reason = [ok(good)], None
        elif fault == "slow":
            steps, reason = [ok(good, delay_s=0.3)], None
        else:
            steps, reason = FAULTS[fault]
            steps = list(steps) + ([ok(good)] if reason is None else [])
        srv.script(ra, steps)
        objects[name] = (ra, reason)
    return objects


def remote_config(srv: FaultServer, darg: bytes, gz1: bytes, **sdss) -> dict:
    sim2real = {"source": "remote", "filters": ["i", "r", "g"], "synthetic": {}}
    return {"data": {"seed": 1, "pairs": {"sim2real": sim2real},
                     "remote": {"catalogues": {"darg_url": srv.serve_file("darg.fits", [Step(503), ok(darg)]),
                                               "darg_sha256": sha256(darg),
                                               "gz1_url": srv.serve_file("gz1.csv", [ok(gz1)])},
                                "n_nonmergers": 10,
                                "sdss": {"base_url": srv.base_url, "concurrency": 2, "rate_per_s": None,
                                         "timeout_s": 0.5, "max_retries": 2, "backoff_s": 0.02, **sdss}}}}


def landed(wf: Path) -> set[str]:
    return {f"{p.parent.name}/{p.stem}" for d in ("mergers", "nonmergers") for p in (wf / SDSS / d).glob("*.jpeg")}


def kill_when_files_land(wf: Path, proc: subprocess.Popen, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    try:
        while len(landed(wf)) < n:
            if proc.poll() is not None:
                pytest.fail(f"snakemake ended early ({proc.returncode}): "
                            f"{(wf / 'run1.out').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {n} cutouts after {timeout_s} s")
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake, its job and the fetch script: the whole group
        proc.wait(timeout=10)
    for _ in range(100):  # the group is gone (a child in another group would keep writing)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail("processes of the killed Snakemake survive")


@pytest.mark.slow
def test_remote_target_killed_failed_and_resumed(tmp_path):
    wf = copy_workflow(tmp_path)
    darg, gz1 = write_catalogues()
    with FaultServer(delay_s=0.4) as srv:          # slow at first, so that the kill lands mid-fetch
        objects = script_objects(srv)
        (wf / "test.yaml").write_text(yaml.safe_dump(remote_config(srv, darg, gz1, max_fail_fraction=0.05)))
        (wf / "loose.yaml").write_text(yaml.safe_dump({"data": {"remote": {"sdss": {"max_fail_fraction": 0.5}}}}))

        # 1. killed (SIGKILL to the process group) after a few cutouts landed
        with open(wf / "run1.out", "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", TARGET,
                                     "--configfile", "test.yaml"], cwd=wf, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            kill_when_files_land(wf, proc, 4)
        first = landed(wf)
        assert len(first) >= 4 and not (wf / SDSS / "fetched.json").exists() and not (wf / TARGET).exists()
        for name in first:  # nothing under a final name is partial
            assert check_jpeg_file(wf / SDSS / f"{name}.jpeg", (128, 128)).ok
        assert (wf / SDSS / "darg_mergers.fits").read_bytes() == darg
        assert (wf / SDSS / "nonmergers.csv").read_bytes() == gz1
        assert srv.file_count("darg.fits") == 2  # the 503 was retried
        sel = pd.read_csv(wf / SDSS / "selection.csv", dtype={"object_id": str})
        selected = {f"{s}/{o}" for s, o in zip(sel["subdir"], sel["object_id"], strict=True)}
        assert {n for n in selected if n.startswith("mergers/")} == {f"mergers/{i}" for i, (st, d, _) in
                                                                     enumerate(DARG, 1) if st == 3 and d < 90}
        assert len(selected) - 11 == 10 and not selected & {"nonmergers/103", "nonmergers/104",
                                                             "nonmergers/105", "nonmergers/106"}
        select_log = (wf / "logs/fetch/select_sdss_objects.log").read_text()
        assert "bad catalogue row mergers/6: dec out of range: 95.0" in select_log
        assert "bad catalogue row nonmergers/105: ra missing" in select_log
        valid = {n for n in selected if objects[n][1] is None}
        bad = {n: objects[n][1] for n in selected if objects[n][1] is not None}
        assert first <= valid
        assert set(bad.values()) == {r for _, r in FAULTS.values() if r}  # every kind of fault was drawn

        # 2. after the kill: unlock, rerun; too many failures -> the rule fails, naming URL and manifest
        srv.delay_s = 0.0
        unlock = snakemake(wf, "--unlock", "--configfile", "test.yaml")
        assert unlock.returncode == 0, unlock.stderr[-2000:]
        before = {n: srv.count(objects[n][0]) for n in selected}
        run2 = snakemake(wf, TARGET, "--configfile", "test.yaml")
        assert run2.returncode != 0
        log = (wf / "logs/fetch/sdss_cutouts.log").read_text()
        manifest_path = wf / SDSS / "manifest.csv"
        assert "FetchError" in log and srv.base_url in log and "results/data/sdss/manifest.csv" in log
        assert "fetch_sdss_cutouts" in run2.stderr and srv.base_url in run2.stderr
        assert not (wf / SDSS / "fetched.json").exists() and not (wf / TARGET).exists()
        assert landed(wf) == valid and temp_files(wf / SDSS) == []
        man = pd.read_csv(manifest_path, dtype={"object_id": str}, keep_default_na=False)
        man.index = man["subdir"] + "/" + man["object_id"]
        assert set(man.index) == selected and man.index.is_unique
        for name in first:  # landed before the kill: not requested again
            assert srv.count(objects[name][0]) == before[name] and man.loc[name, "status"] == "skipped_existing"
        for name, reason in bad.items():
            assert man.loc[name, "status"] == "failed" and man.loc[name, "reason"] == reason, name

        # 3. a looser bound: the rerun requests only the failed objects again, then imports the valid ones
        before = {n: srv.count(objects[n][0]) for n in selected}
        run3 = snakemake(wf, TARGET, "--configfile", "test.yaml", "loose.yaml")
        assert run3.returncode == 0, run3.stderr[-3000:]
        for name in selected:  # retried faults are requested 1 + max_retries times, others once
            again = 0 if name in valid else 3 if "retries" in bad[name] else 1
            assert srv.count(objects[name][0]) - before[name] == again, name
    man = pd.read_csv(manifest_path, dtype={"object_id": str}, keep_default_na=False)
    man.index = man["subdir"] + "/" + man["object_id"]
    assert set(man.loc[man["status"] == "skipped_existing"].index) == valid
    assert dict(man.loc[man["status"] == "failed", "reason"]) == bad
    assert landed(wf) == valid and temp_files(wf / SDSS) == []
    summary = json.loads((wf / SDSS / "fetched.json").read_text())
    assert summary["failed"] == len(bad) and summary["kept_existing"] == len(valid)
    with h5py.File(wf / TARGET) as f:
        ids = list(f["object_id"].asstr()[:])
        labels, images = f["labels"][:], f["images"]
        assert list(f.attrs["filters"]) == ["i", "r", "g"] and images.shape[1:] == (3, 128, 128)
        want = {("darg-" if n.startswith("mergers/") else "gz1-") + n.split("/")[1] for n in valid}
        assert len(ids) == len(set(ids)) and set(ids) == want  # every valid object exactly once, nothing else
        assert all(lab == (1 if i.startswith("darg-") else 0) for i, lab in zip(ids, labels, strict=True))
        k = ids.index("darg-2")
        pixels = np.asarray(Image.open(wf / SDSS / "mergers/2.jpeg")).transpose(2, 0, 1)
        assert np.array_equal(images[k], pixels.astype(np.float32))
    assert "rejected" in (wf / "logs/import/sdss_cutouts.log").read_text()  # the failed ones, by name


# ---------------------------------------------------------------------------------------------
# published arrays: published.py directly, then the rules
# ---------------------------------------------------------------------------------------------

def _images(n=6, c=3, h=10, w=12, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, c, h, w)).astype(np.float32)


def test_npy_both_layouts(tmp_path, caplog):
    x = _images()
    y = np.array([1, 0, 1, 1, 0, 0])
    np.save(tmp_path / "nchw.npy", x)
    np.save(tmp_path / "nhwc.npy", x.transpose(0, 2, 3, 1))
    np.save(tmp_path / "y.npy", y.reshape(-1, 1).astype(float))
    np.save(tmp_path / "onehot.npy", np.eye(2)[y])
    with caplog.at_level(logging.INFO, logger="deepmerge_da.data.published"):
        a = npy_to_image_set(tmp_path / "nchw.npy", tmp_path / "y.npy", filters=["g", "r", "i"], pixel_scale=0.24)
        b = npy_to_image_set(tmp_path / "nhwc.npy", tmp_path / "onehot.npy", filters=["g", "r", "i"])
    assert "stored layout NCHW" in caplog.text and "stored layout NHWC" in caplog.text
    for d in (a, b):
        assert d.images.shape == (6, 3, 10, 12) and d.images.dtype == np.float32
        assert np.array_equal(d.images, x) and list(d.labels) == list(y) and d.labels.dtype == np.int8
        assert list(d.object_id) == [f"pub-{i}" for i in range(6)] and d.filters == ["g", "r", "i"]
    assert a.attrs["pixel_scale"] == 0.24 and np.isnan(b.attrs["pixel_scale"])
    assert a.attrs["config"]["stored_layout"] == "NCHW" and b.attrs["config"]["stored_layout"] == "NHWC"
    # one-channel (N, H, W) images; errors name the file
    np.save(tmp_path / "mono.npy", x[:, 0])
    assert npy_to_image_set(tmp_path / "mono.npy", tmp_path / "y.npy", filters=["F160W"]).images.shape == (6, 1, 10, 12)
    np.save(tmp_path / "short.npy", y[:5])
    with pytest.raises(PublishedDataError, match=r"short\.npy: 5 labels for 6 images"):
        npy_to_image_set(tmp_path / "nchw.npy", tmp_path / "short.npy", filters=["g", "r", "i"])
    np.save(tmp_path / "two.npy", y * 2)
    with pytest.raises(PublishedDataError, match=r"two\.npy: labels must be 0 .* found 2"):
        npy_to_image_set(tmp_path / "nchw.npy", tmp_path / "two.npy", filters=["g", "r", "i"])
    with pytest.raises(PublishedDataError, match=r"nchw\.npy: cannot tell the layout"):
        npy_to_image_set(tmp_path / "nchw.npy", tmp_path / "y.npy", filters=["a", "b"])
    assert detect_layout((5, 3, 3, 75), 3) == "NCHW" and detect_layout((5, 75, 75, 3)) == "NHWC"
    with pytest.raises(PublishedDataError, match="cannot tell"):
        detect_layout((5, 3, 8, 3), 3)


def _fits_bytes(images: np.ndarray, labels, table: bool = False, ids=None) -> bytes:
    if table:
        cols = {"label": np.asarray(labels, np.int16)}
        if ids is not None:
            cols = {"object_id": np.asarray(ids), **cols}
        second = fits.table_to_hdu(Table(cols))
    else:
        second = fits.ImageHDU(np.asarray(labels, np.int16))
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(images), second]).writeto(buf)
    return buf.getvalue()


def test_fits_images_and_labels(tmp_path):
    x = _images(n=4, h=8, w=8, seed=1)
    (tmp_path / "a.fits").write_bytes(_fits_bytes(x.transpose(0, 2, 3, 1), [1, 0, 0, 1]))
    (tmp_path / "b.fits").write_bytes(_fits_bytes(x.astype(">f4"), [0, 1, 1, 0], table=True,
                                                  ids=["s10", "s11", "s12", "s13"]))
    a = fits_to_image_set(tmp_path / "a.fits", filters=["F814W", "F356W", "F160W"])
    b = fits_to_image_set(tmp_path / "b.fits", filters=["F814W", "F356W", "F160W"], pixel_scale=0.06)
    assert np.array_equal(a.images, x) and np.array_equal(b.images, x)
    assert list(a.labels) == [1, 0, 0, 1] and list(b.labels) == [0, 1, 1, 0]
    assert list(a.object_id) == [f"pub-{i}" for i in range(4)] and list(b.object_id) == ["s10", "s11", "s12", "s13"]
    assert a.attrs["config"]["stored_layout"] == "NHWC" and b.attrs["config"]["stored_layout"] == "NCHW"
    one = tmp_path / "one.fits"
    fits.PrimaryHDU(x).writeto(one)
    with pytest.raises(PublishedDataError, match=r"one\.fits: expected images in HDU 0 and labels in HDU 1"):
        fits_to_image_set(one, filters=["a", "b", "c"])


@pytest.mark.slow
def test_published_rules_convert_and_verify(tmp_path):
    wf = copy_workflow(tmp_path)
    x_src, x_tgt = _images(n=8, h=16, w=16, seed=2), _images(n=8, h=16, w=16, seed=3)
    y = np.array([1, 0] * 4)
    files = {}
    for name, arr in (("SimSim_SOURCE_X.npy", x_src.transpose(0, 2, 3, 1)), ("SimSim_SOURCE_y.npy", y),
                      ("SimReal_TARGET_X.npy", x_tgt), ("SimReal_TARGET_y.npy", y)):
        buf = io.BytesIO()
        np.save(buf, arr)
        files[name] = buf.getvalue()
    files["deepmerge_noisy.fits"] = _fits_bytes(x_tgt, 1 - y)
    wrong = "0" * 64
    with FaultServer() as srv:
        entries = [{"name": n, "url": srv.serve_file(n, [Step(503), ok(body)] if n.endswith("y.npy") else [ok(body)]),
                    "sha256": wrong if n == "SimReal_TARGET_X.npy" else sha256(body)} for n, body in files.items()]
        entries[0].pop("sha256")  # optional
        cfg = {"data": {"pairs": {"sim2sim": {"source": "published"},
                                  "sim2real": {"source": "published", "filters": ["i", "r", "g"], "synthetic": {}}},
                        "published": {"files": entries, "sets": {
                            "sim2sim": {"source": {"images": "SimSim_SOURCE_X.npy", "labels": "SimSim_SOURCE_y.npy",
                                                   "pixel_scale": 0.06},
                                        "target": {"fits": "deepmerge_noisy.fits"}},
                            "sim2real": {"source": {"fits": "deepmerge_noisy.fits", "filters": ["g", "r", "i"]},
                                         "target": {"images": "SimReal_TARGET_X.npy",
                                                    "labels": "SimReal_TARGET_y.npy"}}}}}}
        (wf / "pub.yaml").write_text(yaml.safe_dump(cfg))
        run = snakemake(wf, "-k", "results/data/sim2sim/raw/source.h5", "results/data/sim2sim/raw/target.h5",
                        "results/data/sim2real/raw/target.h5", "--configfile", "pub.yaml")
    assert run.returncode != 0  # the sim2real target's images fail their checksum
    pub = wf / "results/data/published"
    bad = pub / "SimReal_TARGET_X.npy"
    log = (wf / "logs/fetch/published_SimReal_TARGET_X.npy.log").read_text()
    assert f"checksum mismatch for {bad.relative_to(wf)}" in log and wrong in log and sha256(files[bad.name]) in log
    assert not bad.exists() and temp_files(wf / "results") == []
    assert not (wf / "results/data/sim2real/raw/target.h5").exists()
    assert sorted(p.name for p in pub.iterdir()) == sorted(set(files) - {bad.name})
    with h5py.File(wf / "results/data/sim2sim/raw/source.h5") as f:
        assert np.array_equal(f["images"][:], x_src) and list(f["labels"][:]) == list(y)
        assert list(f.attrs["filters"]) == ["F814W", "F356W", "F160W"] and f.attrs["pixel_scale"] == 0.06
        assert f["object_id"].asstr()[0] == "pub-0"
    with h5py.File(wf / "results/data/sim2sim/raw/target.h5") as f:
        assert np.array_equal(f["images"][:], x_tgt) and list(f["labels"][:]) == list(1 - y)
    src_log = (wf / "logs/import/published_sim2sim_source.log").read_text()
    assert "stored layout NHWC" in src_log
    assert "stored layout NCHW" in (wf / "logs/import/published_sim2sim_target.log").read_text()


# ---------------------------------------------------------------------------------------------
# configuration: the commented examples validate; cross-key errors name the key
# ---------------------------------------------------------------------------------------------

def _config_with_examples() -> dict:
    """config/config.yaml with its commented-out data.remote / data.published examples switched on."""
    lines = (REPO / "config/config.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  # remote:"))
    block = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        block.append("  " + line[4:])
    cfg = yaml.safe_load("\n".join(lines))
    cfg["data"].update(yaml.safe_load("\n".join(block)))
    return cfg


def test_config_examples_and_cross_key_checks():

    schema = REPO / "workflow/schemas/config.schema.yaml"
    cfg = _config_with_examples()
    cfg["data"]["pairs"]["sim2sim"]["source"] = "published"
    cfg["data"]["pairs"]["sim2real"] = {"source": "remote", "filters": ["i", "r", "g"], "synthetic": {}}
    cfg["data"]["remote"]["catalogues"].update(darg_url="https://example.org/d.fits",
                                               gz1_url="https://example.org/g.csv")
    validate_config(cfg, schema)
    assert cfg["data"]["remote"]["sdss"]["base_url"].endswith("/dr15/SkyServerWS/ImgCutout/getjpeg")

    def named(edit, key):
        bad = yaml.safe_load(yaml.safe_dump(cfg))
        edit(bad)
        with pytest.raises(ConfigError, match=f"'{key}'"):
            validate_config(bad, schema)

    named(lambda c: c["data"]["remote"]["catalogues"].pop("gz1_url"), "data.remote.catalogues.gz1_url")
    named(lambda c: c["data"]["remote"]["sdss"].update(timeout=3), "data.remote.sdss")
    named(lambda c: c["data"]["remote"]["sdss"].update(size=64), "data.remote.sdss.size")
    named(lambda c: c["data"]["remote"]["catalogues"].update(darg_sha256="abc"), "data.remote.catalogues.darg_sha256")
    named(lambda c: c["data"]["pairs"]["sim2sim"].update(source="remote"), "data.pairs.sim2sim.source")
    named(lambda c: c["data"]["published"]["sets"]["sim2sim"].pop("target"), "data.published.sets.sim2sim.target")
    named(lambda c: c["data"]["published"]["sets"]["sim2sim"]["source"].update(fits="x.fits"),
          "data.published.sets.sim2sim.source")
    named(lambda c: c["data"]["published"]["sets"]["sim2sim"]["source"].update(images="nope.npy"),
          "data.published.sets.sim2sim.source.images")
    named(lambda c: c["data"]["published"]["files"].append(dict(c["data"]["published"]["files"][0])),
          "data.published.files")
    named(lambda c: c["data"]["published"]["files"][0].update(name="../x.npy"), "data.published.files.0.name")
