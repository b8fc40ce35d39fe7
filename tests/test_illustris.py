"""The Illustris source domain (data.pairs.<pair>.source: illustris) against a stand-in for the Illustris API on
127.0.0.1 (tests/illustris_server.py): merger labels from SubLink trees, SUNRISE file checks, the observation, the
fetch stages with injected faults (401 without the key, 429, 500, 503, a truncated FITS file, a subhalo without
images, an unreachable service), and the workflow end to end -- killed (SIGKILL) mid-fetch, rerun without
requesting anything twice, the key in no file it writes."""
from __future__ import annotations

import json
import os
import secrets
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

from deepmerge_da.data.illustris import (
    Selection,
    fetch_catalogue,
    fetch_images,
    fetch_merger_histories,
    import_illustris,
    resample,
    snr_sigma,
)
from deepmerge_da.data.illustris_api import API_KEY_ENV, IllustrisError
from deepmerge_da.data.merger_history import TreeError, label_subhalo, read_sublink_tree
from deepmerge_da.data.sunrise import check_sunrise_fits, read_views
from deepmerge_da.data.synthetic.cosmology import age_gyr
from helpers import copy_workflow, snakemake
from http_fault_server import Step
from illustris_server import IllustrisServer, sublink_tree, sunrise_fits

KEY = f"test-key-{secrets.token_hex(12)}"
SNAP = 68
# the pair's bands -> their names in the SUNRISE files, which also hold a band the pair does not use
FITS_FILTERS = {"F814W": "hst/acs_f814w", "F356W": "jwst/nircam_f356w", "F160W": "hst/wfc3_f160w"}
FILE_FILTERS = ["sdss/r", "hst/acs_f814w", "jwst/nircam_f356w", "hst/wfc3_f160w"]
FAST = dict(concurrency=2, rate_per_s=None, timeout_s=2, max_retries=2, backoff_s=0.02, progress=False)


def redshifts() -> dict[int, float]:
    """Snapshots 58-75 every 0.1 Gyr, snapshot 68 at z = 2: the 0.5 Gyr window around 68 holds 66-70."""
    z = np.linspace(0, 6, 20001)
    t = np.asarray(age_gyr(z))
    t68 = age_gyr(2.0)
    return {n: float(np.interp(t68 + 0.1 * (n - SNAP), t[::-1], z[::-1])) for n in range(58, 76)}


TIMES = {n: age_gyr(z) for n, z in redshifts().items()}


# -- merger trees --------------------------------------------------------------------------------------------------

def main_id(snap: int, sid: int) -> int:
    return sid if snap == SNAP else 1000 * snap + sid


def scenario(kind: str, sid: int) -> tuple[list[tuple], list[tuple[int, int]]]:
    """The SubLink tree (nodes for sublink_tree) of subhalo ``sid`` of snapshot 68's descendant at snapshot 70, and
    the (snap, id) chain from the subhalo to that root.  ``kind``: quiet, past (1:2 at 68), past_early (1:3 at 66),
    future (1:2 at 70), secondary (the subhalo is the 1:3 partner of a merger at 69), minor (1:20 at 68), old
    (1:2 at 63, before the window)."""
    nodes: dict[str, tuple] = {}
    children: dict[str, list[str]] = {}

    def add(key, snap, sfid, mass, desc):
        nodes[key] = (snap, sfid, mass, desc)
        children.setdefault(desc, []).append(key)

    def line(prefix, first, last, sfid_of, mass, desc):  # snapshots last..first, the last's descendant ``desc``
        for snap in range(last, first - 1, -1):
            add(f"{prefix}{snap}", snap, sfid_of(snap), mass * (0.9 + 0.01 * snap / 10), desc)
            desc = f"{prefix}{snap}"

    if kind == "secondary":
        line("b", 60, 70, lambda s: 500000 + 1000 * s + sid, 3.0, None)
        line("m", 60, 68, lambda s: main_id(s, sid), 1.0, "b69")
        root, chain = "b70", [(68, sid), (69, 500000 + 69000 + sid), (70, 500000 + 70000 + sid)]
    else:
        line("m", 60, 70, lambda s: main_id(s, sid), 1.0, None)
        root, chain = "m70", [(s, main_id(s, sid)) for s in (68, 69, 70)]
        merge = {"past": (68, 0.5), "past_early": (66, 0.34), "future": (70, 0.5), "minor": (68, 0.05),
                 "old": (63, 0.5)}.get(kind)
        if merge:
            snap, ratio = merge
            line("s", 58, snap - 1, lambda s: 900000 + 1000 * s + sid, ratio, f"m{snap}")

    def depth_first(key):  # the first progenitor is the main (first added, heavier) line
        snap, sfid, mass, desc = nodes[key]
        out = [(key, snap, sfid, mass, desc)]
        for child in children.get(key, []):
            out += depth_first(child)
        return out

    return depth_first(root), chain


LABELS = {"quiet": 0, "past": 1, "past_early": 1, "future": 1, "secondary": 1, "minor": 0, "old": 0}


def write_tree(path: Path, kind: str, sid: int = 7) -> Path:
    path.write_bytes(sublink_tree(scenario(kind, sid)[0]))
    return path


@pytest.mark.parametrize("kind", list(LABELS))
def test_merger_labels(tmp_path, kind):
    tree = read_sublink_tree(write_tree(tmp_path / "t.hdf5", kind))
    z2 = label_subhalo(tree, snap=SNAP, subfind_id=7, times_gyr=TIMES, window_before_gyr=0.25,
                       window_after_gyr=0.25, min_mass_ratio=0.1)
    assert z2.label == LABELS[kind], z2
    expected_ratio = {"past": 0.5, "past_early": 0.34, "future": 0.5, "minor": 0.05, "secondary": 1 / 3}
    if kind in expected_ratio:
        assert len(z2.mergers) == 1 and z2.mergers[0].ratio == pytest.approx(expected_ratio[kind], rel=0.05)
    # the z = 0 rule (only the 0.25 Gyr before the snapshot) drops future mergers
    past_only = label_subhalo(tree, snap=SNAP, subfind_id=7, times_gyr=TIMES, window_before_gyr=0.25,
                              window_after_gyr=0.0)
    assert past_only.label == (LABELS[kind] if kind in ("past", "past_early") else 0)


def test_tree_errors(tmp_path):
    tree = read_sublink_tree(write_tree(tmp_path / "t.hdf5", "quiet"))
    with pytest.raises(TreeError, match="subhalo 8 of snapshot 68 is not in the tree"):
        label_subhalo(tree, snap=SNAP, subfind_id=8, times_gyr=TIMES, window_before_gyr=0.25, window_after_gyr=0)
    (tmp_path / "bad.hdf5").write_bytes(b"<html>oops</html>")
    with pytest.raises(TreeError, match="not a readable HDF5 file"):
        read_sublink_tree(tmp_path / "bad.hdf5")
    with h5py.File(tmp_path / "partial.hdf5", "w") as f:
        f["SubhaloID"] = [1]
    with pytest.raises(TreeError, match="no field DescendantID"):
        read_sublink_tree(tmp_path / "partial.hdf5")


# -- SUNRISE files and the observation ------------------------------------------------------------------------------

def test_sunrise_checks(tmp_path):
    good = sunrise_fits(FILE_FILTERS, 2)
    bands = list(FITS_FILTERS.values())
    cases = {"good": (good, None), "truncated": (good[: len(good) // 2 + 100], "truncated fits"),
             "html": (b"<html>error</html>", "not a FITS file"), "empty": (b"", "empty file"),
             "cut_at_block": (good[:2880 * 4], "truncated fits")}
    for name, (body, reason) in cases.items():
        (tmp_path / name).write_bytes(body)
        got = check_sunrise_fits(tmp_path / name, bands, [0, 1])
        assert (got is None) if reason is None else got.startswith(reason), (name, got)
    assert check_sunrise_fits(tmp_path / "good", ["hst/wfc3_f125w"], [0]).startswith(
        "missing filter hst/wfc3_f125w (the file has: sdss/r, hst/acs_f814w")
    missing_camera = check_sunrise_fits(tmp_path / "good", bands, [0, 2])
    assert missing_camera == "missing camera 2 (no HDU CAMERA2-BROADBAND-NONSCATTER)"
    views = read_views(tmp_path / "good", bands, [1, 0])
    assert views.images.shape == (2, 3, 32, 32) and views.pixel_kpc == pytest.approx(40 / 32)
    assert 0.7 < views.images.max() / 2.5e5 < 1.01  # I_nu ~ 2.5e5 Jy/sr at the centre (off a pixel's centre)


def test_resample_keeps_surface_brightness_and_centre():
    y, x = np.mgrid[0:41, 0:41] - 20.0
    sb = np.exp(-(x ** 2 + y ** 2) / 50.0)[None]
    twice = resample(sb, 2.0, 81)  # pixels half the size: the same profile over twice as many pixels
    assert twice.shape == (1, 81, 81) and np.unravel_index(twice.argmax(), twice.shape[1:]) == (40, 40)
    assert twice[0, 40, 40] == pytest.approx(1.0, abs=1e-6)
    assert twice[0, 40, 60] == pytest.approx(sb[0, 20, 30], rel=1e-3)
    half = resample(sb, 0.5, 21)  # shrinking: smoothed, still centred, flux per pixel area kept
    assert np.unravel_index(half.argmax(), half.shape[1:]) == (10, 10)
    assert (half.sum() * 4) == pytest.approx(sb.sum(), rel=0.02)
    image = np.zeros((3, 40, 40))
    image[:, 15:25, 15:25] = [[[1.0]], [[2.0]], [[4.0]]]
    # a flat 10 x 10 galaxy: half its light in 50 px (Re = 4 px); within 1 Re all galaxy, within 2 Re half sky
    assert snr_sigma(image, 25.0, 1.0) == pytest.approx(np.array([1.0, 2.0, 4.0]) / 25)
    assert snr_sigma(image, 25.0, 2.0) == pytest.approx(np.array([1.0, 2.0, 4.0]) / 25 / 2, rel=0.1)


# -- the fetch stages against the stand-in API ----------------------------------------------------------------------

KINDS = ["past", "quiet", "future", "minor", "secondary", "old", "past_early", "quiet", "past", "minor", "future",
         "old", "secondary", "quiet", "quiet", "quiet"]
NO_IMAGES, TRUNCATED = 15, 16  # subhalo ids (1-based positions in KINDS)


def populate(srv: IllustrisServer) -> dict[int, str]:
    """Serve the snapshots, a catalogue of 16 subhalos (and one below the mass cut), their descendants' details, trees
    and SUNRISE files, with faults; returns {subhalo id: kind}."""
    srv.snapshots = redshifts()
    kinds = {sid: kind for sid, kind in enumerate(KINDS, start=1)}
    srv.catalogue[SNAP] = [(sid, 1.0) for sid in kinds] + [(40, 0.5)]
    for sid, kind in kinds.items():
        nodes, chain = scenario(kind, sid)
        for (snap, hid), (desc_snap, desc_id) in zip(chain, [*chain[1:], (71, 71000 + sid)], strict=True):
            srv.serve_json(f"snapshots/{snap}/subhalos/{hid}/", {"snap": snap, "id": hid, "mass_stars": 1.0,
                                                                  "desc_snap": desc_snap, "desc_sfid": desc_id})
        root_snap, root_id = chain[-1]
        srv.serve(f"snapshots/{root_snap}/subhalos/{root_id}/sublink/full.hdf5", sublink_tree(nodes))
        body = sunrise_fits(FILE_FILTERS, 2, merger=LABELS[kind] == 1, seed=sid)
        if sid == TRUNCATED:
            body = body[: len(body) // 2 + 100]
        if sid != NO_IMAGES:
            srv.serve(f"snapshots/{SNAP}/subhalos/{sid}/stellar_mocks/broadband.fits", body)
    srv.fail_first(f"snapshots/{SNAP}/subhalos/?mass_stars__gt=0.704&order_by=id&limit=5&offset=5", Step(503))
    srv.fail_first(f"snapshots/{SNAP}/subhalos/3/", Step(429, headers=(("Retry-After", "0"),)))
    srv.fail_first("snapshots/70/subhalos/70002/sublink/full.hdf5", Step(500), Step(500))
    return kinds


@pytest.fixture
def api_server(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, KEY)
    with IllustrisServer(KEY) as srv:
        yield srv, populate(srv)


def test_fetch_stages_with_faults(api_server, tmp_path):
    srv, kinds = api_server
    opts = dict(pair="sim2sim", selection={"cameras": [0, 1], "fits_filters": FITS_FILTERS}, base_url=srv.base_url,
                max_fail_fraction=0.2, **FAST)
    catalogue = fetch_catalogue(tmp_path, page_size=5, **opts)
    assert list(catalogue["subhalo_id"]) == list(kinds) and catalogue["object_id"][0] == "Illustris-1-68-1"
    labels = fetch_merger_histories(tmp_path, **opts).set_index("subhalo_id")
    assert {sid: int(labels.loc[sid, "label"]) for sid in kinds} == {sid: LABELS[k] for sid, k in kinds.items()}
    assert labels.loc[5, "major_merger_snaps"] == "69" and labels.loc[3, "major_merger_snaps"] == "70"
    summary = fetch_images(tmp_path, bands=list(FITS_FILTERS), **opts)
    reasons = summary["failure_reasons"]
    assert summary["failed"] == 2 and reasons[f"Illustris-1-68-{NO_IMAGES}"] == "http 404"
    assert reasons[f"Illustris-1-68-{TRUNCATED}"].endswith("bytes, not a whole number of 2880-byte blocks)")
    manifest = pd.read_csv(tmp_path / "images_manifest.csv", keep_default_na=False)
    assert list(manifest.columns) == ["object_id", "url", "status", "reason", "attempts", "bytes"]
    assert (manifest["status"] == "ok").sum() == 14 and not list(tmp_path.rglob("*.part"))
    # every fault was met, and retried where it should be
    assert srv.requests[srv.path(f"snapshots/{SNAP}/subhalos/3/")] == 2
    assert srv.requests[srv.path("snapshots/70/subhalos/70002/sublink/full.hdf5")] == 3
    page2 = f"snapshots/{SNAP}/subhalos/?mass_stars__gt=0.704&order_by=id&limit=5&offset=5"
    assert srv.requests[srv.path(page2)] == 2
    assert srv.requests[srv.path(f"snapshots/{SNAP}/subhalos/{TRUNCATED}/stellar_mocks/broadband.fits")] == 1
    assert all(h.get("api-key") == KEY for h in srv.headers_seen)

    # a second run requests only the two failed images again; the raw sets: two views per galaxy, one id per
    # galaxy, source and target
    before = dict(srv.requests)
    fetch_catalogue(tmp_path, page_size=5, **opts)
    fetch_merger_histories(tmp_path, **opts)
    fetch_images(tmp_path, bands=list(FITS_FILTERS), **opts)
    assert {p for p, n in srv.requests.items() if n != before.get(p)} == {
        srv.path(f"snapshots/{SNAP}/subhalos/{sid}/stellar_mocks/broadband.fits") for sid in (NO_IMAGES, TRUNCATED)}
    source, target = import_illustris(tmp_path, pair="sim2sim", synthetic={}, seed=1, source_path=tmp_path / "s.h5",
                                      target_path=tmp_path / "t.h5", selection=opts["selection"])
    assert source.images.shape == (28, 3, 75, 75) and source.filters == ["F814W", "F356W", "F160W"]
    assert list(source.object_id[:2]) == ["Illustris-1-68-1", "Illustris-1-68-1"]
    assert np.array_equal(source.labels, target.labels) and int(source.labels.sum()) == 14
    assert np.isfinite(target.images).all() and (target.images - source.images).std() > 0
    assert source.attrs["units"] == "nJy/pixel" and source.attrs["pixel_scale"] == 0.06
    # the files' centres are 22 mag/arcsec^2 (2.5e5 Jy/sr): ~21 nJy on a 0.06" pixel, a little less after the PSF
    peak = np.median(source.images.max(axis=(2, 3)))
    assert 0.7 < peak / (3631e9 * 10 ** (-0.4 * 22) * 0.06 ** 2) < 1.05

    # the same files as a sim2real source (g, r, i named after three of the files' bands): 0.24 kpc pixels, the
    # 1 kpc PSF and noise for S/N 25 (the target stays synthetic)
    sim2real = {"snapshot": SNAP, "cameras": [0, 1],
                "fits_filters": {"g": "hst/acs_f814w", "r": "jwst/nircam_f356w", "i": "hst/wfc3_f160w"}}
    (mocks,) = import_illustris(tmp_path, pair="sim2real", synthetic={}, seed=1, source_path=tmp_path / "r.h5",
                                selection=sim2real)
    assert mocks.images.shape == (28, 3, 75, 75) and mocks.filters == ["g", "r", "i"]
    assert mocks.attrs["pixel_scale"] == pytest.approx(0.24 / 0.997, rel=0.05)  # 0.24 kpc at z = 0.05
    # the noise, from neighbouring pixels' differences (the light is smooth on 0.24 kpc): S/N 25 of the mean
    # within 2 half-light radii, i.e. a few times below the peak / 25
    noise = np.std(np.diff(mocks.images, axis=-1), axis=(2, 3)) / np.sqrt(2)
    ratio = np.median(noise / mocks.images.max(axis=(2, 3)))
    assert 1 / 200 < ratio < 1 / 25, ratio
    with pytest.raises(ValueError, match=r"fits_filters: 'G' is not one of the bands g, r, i"):
        import_illustris(tmp_path, pair="sim2real", synthetic={}, seed=1, source_path=tmp_path / "x.h5",
                         selection={**sim2real, "fits_filters": {"G": "sdss/r"}})


def test_key_and_service_errors(api_server, tmp_path, monkeypatch):
    srv, _ = api_server
    opts = dict(pair="sim2sim", base_url=srv.base_url, **FAST)
    monkeypatch.delenv(API_KEY_ENV)
    with pytest.raises(IllustrisError, match=f"^{API_KEY_ENV} is not set: "):
        fetch_catalogue(tmp_path, **opts)
    assert sum(srv.requests.values()) == 0
    monkeypatch.setenv(API_KEY_ENV, "not-the-key")
    with pytest.raises(IllustrisError, match=r"refused the request \(http 401\): check the key in ILLUSTRIS_API_KEY"):
        fetch_catalogue(tmp_path, **opts)
    assert sum(srv.requests.values()) == 1  # a 401 is not retried
    port = srv._httpd.server_address[1]
    srv.stop()
    with pytest.raises(IllustrisError, match=rf"cannot reach the Illustris API at http://127.0.0.1:{port}/api/: "
                                             r"connection error after 2 retries") as err:
        fetch_catalogue(tmp_path, **opts)
    assert "\n" not in str(err.value) and not list(tmp_path.rglob("*.part"))
    with pytest.raises(ValueError, match="unknown key 'snapshots'"):
        Selection.of_pair("sim2sim", {"snapshots": 3})


# -- the workflow -------------------------------------------------------------------------------------------------

def workflow_config(srv: IllustrisServer) -> dict:
    return {"data": {"pairs": {"sim2sim": {"source": "illustris", "filters": ["F814W", "F356W", "F160W"],
                                           "synthetic": {}}},
                     "illustris": {"base_url": srv.base_url, "concurrency": 2, "rate_per_s": None, "timeout_s": 2,
                                   "max_retries": 2, "backoff_s": 0.02, "max_fail_fraction": 0.2, "page_size": 5,
                                   "pairs": {"sim2sim": {"cameras": [0, 1], "fits_filters": FITS_FILTERS}}}},
            "experiments": {"sim2sim": {"networks": ["deepmerge"], "methods": ["ada"], "seeds": [1]},
                            "sim2real": None},
            "training": {"max_epochs": 1, "batch_size": 16}}


def landed(wf: Path) -> set[Path]:
    return {p for p in (wf / "results/data/illustris/sim2sim").rglob("*")
            if p.is_file() and p.parent.name in ("catalogue", "subhalos", "trees", "images")
            and not p.name.startswith(".")}  # not the temporary files a kill leaves


def url_path(srv: IllustrisServer, wf: Path, path: Path) -> str:
    """The request path (below /api/<sim>/) of a downloaded file."""
    name, kind = path.stem, path.parent.name
    if kind == "catalogue":  # <snap>_<query, & as _>
        snap, query = name.split("_", 1)
        for key in ("order_by", "limit", "offset"):
            query = query.replace(f"_{key}=", f"&{key}=")
        return srv.path(f"snapshots/{snap}/subhalos/?{query}")
    snap, sid = name.split("_")
    tail = {"subhalos": "", "trees": "sublink/full.hdf5", "images": "stellar_mocks/broadband.fits"}[kind]
    return srv.path(f"snapshots/{snap}/subhalos/{sid}/{tail}")


@pytest.mark.slow
def test_workflow_killed_and_resumed(tmp_path):
    (tmp_path / "wf").mkdir()
    wf = copy_workflow(tmp_path / "wf")
    env = dict(os.environ, **{API_KEY_ENV: KEY})
    env.pop("PYTHONWARNINGS", None)
    with IllustrisServer(KEY, delay_s=0.15) as srv:
        populate(srv)
        (wf / "illustris.yaml").write_text(yaml.safe_dump(workflow_config(srv)))
        args = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "illustris.yaml"]

        # killed (SIGKILL to the whole process group) once a few trees have landed
        with open(wf / "run1.out", "w") as out:
            proc = subprocess.Popen(args, cwd=wf, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            deadline = time.monotonic() + 60
            while len([p for p in landed(wf) if p.parent.name == "trees"]) < 3:
                assert proc.poll() is None, (wf / "run1.out").read_text()[-3000:]
                assert time.monotonic() < deadline
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        time.sleep(0.3)  # requests in flight at the kill are answered into the void
        first = landed(wf)
        assert not (wf / "results/data/illustris/sim2sim/labels.csv").exists()
        requested_before = dict(srv.requests)

        # rerun: nothing that landed is requested again; the whole tiny grid completes
        srv.delay_s = 0.0
        assert snakemake(wf, "--unlock", "--configfile", "illustris.yaml").returncode == 0
        run2 = subprocess.run(args, cwd=wf, env=env, capture_output=True, text=True, timeout=300)
        assert run2.returncode == 0, run2.stderr[-4000:]
        for path in first:
            assert srv.requests[url_path(srv, wf, path)] == requested_before[url_path(srv, wf, path)], path
        twice = {p for p, n in srv.served.items() if n > 1}
        assert len(twice) <= 2 and not twice & {url_path(srv, wf, p) for p in first}  # at most those in flight

    raw = wf / "results/data/sim2sim/raw"
    with h5py.File(raw / "source.h5") as f:
        ids = list(f["object_id"].asstr()[:])
        assert len(ids) == 28 and len(set(ids)) == 14 and list(f.attrs["filters"]) == ["F814W", "F356W", "F160W"]
    with h5py.File(wf / "results/data/sim2sim/source.h5") as f:  # prepared: no galaxy in two splits
        split = pd.Series(f["split"][:], index=f["object_id"].asstr()[:])
        assert split.groupby(level=0).nunique().max() == 1
    assert (wf / "results/tables/table1_sim2sim.csv").exists()
    assert "Illustris galaxies" in (wf / "results/tables/table1_sim2sim.csv").read_text().splitlines()[0]
    manifest = pd.read_csv(wf / "results/data/illustris/sim2sim/images_manifest.csv", keep_default_na=False)
    assert set(manifest.loc[manifest["status"] == "failed", "reason"].str.split(" ").str[0]) == {"http", "truncated"}
    assert json.loads((wf / "results/data/illustris/sim2sim/fetched.json").read_text())["failed"] == 2

    # the key is in no file under the working directory (results, logs, Snakemake's metadata)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
