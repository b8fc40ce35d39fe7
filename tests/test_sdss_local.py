"""Catalogue selection (catalogues.py) and reading cutout directories (sdss_local.py).

The real-data tests read the local copy of SDSS cutouts at ../shared/data/sdss-galaxyzoo
(relative to the repository root) and are skipped when it is absent.  Nothing is copied from it
into the repository.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepmerge_da.data import catalogues
from deepmerge_da.data.catalogues import (
    CatalogueError,
    build_selection,
    read_darg_catalogue,
    select_mergers,
    select_nonmergers,
)
from deepmerge_da.data.fetch import fetch_cutouts
from deepmerge_da.data.jpeg import check_jpeg_file
from deepmerge_da.data.sdss_cutouts import load_cutout_dir
from helpers import REAL_SDSS, needs_real_sdss
from http_fault_server import FaultServer, make_blank_jpeg, make_jpeg, ok

# ---------------------------------------------------------------------------------------------
# catalogues on small tables written here
# ---------------------------------------------------------------------------------------------

def _darg_csv(path: Path) -> Path:
    pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6, 7, 8],
        "stage": [1, 2, 3, 3, 3, 3, 3, 3],
        "ra1": ["10.0", "11.0", "12.0", "13.0", "", "14.0", "abc", "359.5"],
        "dec1": [1.0, 2.0, 3.0, 4.0, 5.0, 95.0, 6.0, -89.0],
        "specz1": [0.05, 0.06, 0.07, 0.08, 0.05, 0.05, 0.05, 0.02],
    }).to_csv(path, index=False)
    return path


def _gz1_csv(path: Path) -> Path:
    pd.DataFrame({
        "ID": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "RAdeg": [20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 20.0, 400.0, 28.0, 29.0],
        "DEdeg": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, np.nan, 0.0],
        "zsp": [0.05, 0.004, 0.1, 0.099, 0.03, 0.06, 0.07, 0.05, 0.05, 0.05, 0.05],
        "P_MG": [0.0, 0.0, 0.0, 0.19, 0.2, 0.5, 0.1, 0.0, 0.0, 0.0, 0.05],
        "SDSS": ["J1", "J2", "J3", "J4", "J5", "J6", "J7", "J1", "J9", "J10", "J11"],
    }).to_csv(path, index=False)
    return path


def test_selection_small_tables(tmp_path):
    darg = read_darg_catalogue(_darg_csv(tmp_path / "darg.csv"))
    m = select_mergers(darg)
    assert list(m.table["object_id"]) == ["3", "4", "8"]  # stage 3 with a good position
    assert list(m.table["label"]) == [1, 1, 1] and set(m.table["subdir"]) == {"mergers"}
    assert dict(m.bad) == {"5": "ra missing", "6": "dec out of range: 95.0", "7": "ra not a finite number: 'abc'"}
    assert m.table["ra"].dtype == float and np.allclose(m.table["z"], [0.07, 0.08, 0.02])

    gz1 = catalogues.read_gz1_nonmergers(_gz1_csv(tmp_path / "gz1.csv"))
    nm = select_nonmergers(gz1, None)
    # z cut drops 2 (0.004) and 3 (0.1, not < 0.1); f_m cut drops 5 (0.2) and 6; 8 repeats galaxy J1
    assert list(nm.table["object_id"]) == ["1", "4", "7", "11"]
    assert dict(nm.bad) == {"9": "ra out of range: 400.0", "10": "dec missing"}
    assert list(nm.table.columns) == catalogues.SELECTION_COLUMNS and set(nm.table["label"]) == {0}
    assert any("repeated" in n for n in nm.notes)

    a = select_nonmergers(gz1, 2, seed=3).table
    b = select_nonmergers(gz1.iloc[::-1].reset_index(drop=True), 2, seed=3).table
    assert len(a) == 2 and list(a["object_id"]) == list(b["object_id"])  # seeded, row-order independent
    draws = {tuple(select_nonmergers(gz1, 2, seed=s).table["object_id"]) for s in range(20)}
    assert len(draws) > 1
    with pytest.raises(CatalogueError, match="only 4 distinct"):
        select_nonmergers(gz1, 5)

    sel = build_selection(tmp_path / "darg.csv", tmp_path / "gz1.csv", n_nonmergers=3, seed=0)
    assert sel.n_mergers == 3 and sel.n_nonmergers == 3 and len(sel.bad) == 5
    assert ("mergers/5", "ra missing") in sel.bad
    path = catalogues.write_selection(sel.table, tmp_path / "out" / "selection.csv")
    back = catalogues.read_selection(path)
    assert list(back["object_id"]) == list(sel.table["object_id"])
    assert all(isinstance(o, str) for o in back["object_id"])


def test_selection_configurable_columns_and_errors(tmp_path):
    p = tmp_path / "m.csv"
    pd.DataFrame({"RA": [1.0, 2.0], "DEC": [3.0, 4.0], "STAGE": [3, 3]}).to_csv(p, index=False)
    darg = read_darg_catalogue(p, stage_col="STAGE", ra_col="RA", dec_col="DEC")
    m = select_mergers(darg, stage_col="STAGE", ra_col="RA", dec_col="DEC", z_col=None)
    assert list(m.table["object_id"]) == ["1", "2"]  # id = 1-based row number when absent
    with pytest.raises(CatalogueError) as err:
        read_darg_catalogue(p)  # default columns ra1/dec1 absent
    assert str(p) in str(err.value) and "'ra1'" in str(err.value)
    q = tmp_path / "g.csv"
    pd.DataFrame({"ID": [1], "RAdeg": [1.0], "DEdeg": [1.0]}).to_csv(q, index=False)
    with pytest.raises(CatalogueError) as err:
        catalogues.read_gz1_nonmergers(q)
    assert str(q) in str(err.value) and "'zsp'" in str(err.value)
    with pytest.raises(CatalogueError, match="not found"):
        catalogues.read_table(tmp_path / "nope.fits")
    r = tmp_path / "nofm.csv"
    pd.DataFrame({"ID": [1, 2], "RAdeg": [1.0, 2.0], "DEdeg": [1.0, 1.0], "zsp": [0.05, 0.05]}).to_csv(r, index=False)
    nm = select_nonmergers(catalogues.read_gz1_nonmergers(r), None)
    assert len(nm.table) == 2 and any("NOT applied" in n for n in nm.notes)


# ---------------------------------------------------------------------------------------------
# catalogues on the real Darg catalogue
# ---------------------------------------------------------------------------------------------

@needs_real_sdss
def test_real_darg_post_mergers(tmp_path):
    fits = select_mergers(read_darg_catalogue(REAL_SDSS / "darg_mergers.fits"))
    csv = select_mergers(read_darg_catalogue(REAL_SDSS / "darg_mergers.csv"))  # stage from the FITS beside it
    assert len(fits.table) == 310 and len(csv.table) == 310 and fits.bad == [] and csv.bad == []
    assert list(fits.table["object_id"]) == list(csv.table["object_id"])
    assert np.allclose(fits.table["ra"], csv.table["ra"]) and fits.table["object_id"].is_unique
    lone = tmp_path / "darg_mergers.csv"
    shutil.copy(REAL_SDSS / "darg_mergers.csv", lone)
    with pytest.raises(CatalogueError) as err:
        read_darg_catalogue(lone)
    assert str(lone) in str(err.value) and "'stage'" in str(err.value)

    sel = build_selection(REAL_SDSS / "darg_mergers.csv", REAL_SDSS / "nonmergers.csv", n_nonmergers=3000, seed=0)
    t = sel.table
    assert sel.n_mergers == 310 and sel.n_nonmergers == 3000
    assert not t.duplicated(["subdir", "object_id"]).any()
    nm = t[t["label"] == 0]
    assert not nm.duplicated(["ra", "dec"]).any()  # repeated galaxies drawn once
    assert ((nm["z"] > 0.005) & (nm["z"] < 0.1)).all()


# ---------------------------------------------------------------------------------------------
# load_cutout_dir
# ---------------------------------------------------------------------------------------------

@needs_real_sdss
def test_load_real_known_faults(caplog):
    faulty_m = {"1943": "empty body", "1290": "blank image", "1942": "blank image"}
    faulty_n = {"467": "blank image", "2338": "blank image"}
    good_m = [7, 36, 39]
    # 3615 and 7748 are the same galaxy (drawn twice): one object, at the lowest ID
    good_n = [1, 2, 3615, 7748]
    with caplog.at_level(logging.WARNING, logger="deepmerge_da.data.sdss_cutouts"):
        data = load_cutout_dir(REAL_SDSS, size=75, merger_ids=[*good_m, *map(int, faulty_m)],
                               nonmerger_ids=[*good_n, *map(int, faulty_n)])
    rejected = dict(data.rejected)
    assert rejected == {**{f"mergers/{k}.jpeg": v for k, v in faulty_m.items()},
                        **{f"nonmergers/{k}.jpeg": v for k, v in faulty_n.items()}}
    for rel, reason in data.rejected:  # the same validation function as the downloader
        assert check_jpeg_file(REAL_SDSS / rel, (128, 128)).reason == reason
        assert rel in caplog.text
    assert list(data.object_id) == ["darg-7", "darg-36", "darg-39", "gz1-1", "gz1-2", "gz1-3615"]
    assert data.images.shape == (6, 3, 75, 75) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int8 and list(data.labels) == [1, 1, 1, 0, 0, 0]
    assert data.filters == ("i", "r", "g")
    assert data.pixel_scale == pytest.approx(0.396127 * 128 / 75)
    assert data.images.reshape(6, -1).std(axis=1).min() > 1.0


@needs_real_sdss
def test_load_real_defaults_and_subset():
    data = load_cutout_dir(REAL_SDSS, size=32, max_nonmergers=25, seed=1)
    n_m = int((data.labels == 1).sum())
    assert n_m == 310 and int((data.labels == 0).sum()) == 25  # all stage-3 files are valid
    assert data.images.shape == (335, 3, 32, 32) and data.images.dtype == np.uint8
    assert len(set(data.object_id)) == len(data)
    assert all(o.startswith("darg-") for o in data.object_id[:n_m])
    assert all(o.startswith("gz1-") for o in data.object_id[n_m:])
    assert data.ra.shape == (335,) and np.isfinite(data.ra).all()
    again = load_cutout_dir(REAL_SDSS, size=32, max_nonmergers=25, seed=1)
    other = load_cutout_dir(REAL_SDSS, size=32, max_nonmergers=25, seed=2)
    assert list(again.object_id) == list(data.object_id) and np.array_equal(again.images, data.images)
    assert list(other.object_id[n_m:]) != list(data.object_id[n_m:])


def test_load_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent")):
        load_cutout_dir(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        load_cutout_dir(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(err.value) and "nonmergers.csv" in str(err.value)


def test_fetched_directory_loads(tmp_path):
    """End to end: fetch from the local server, then read the directory through its catalogue.csv."""
    sel = pd.DataFrame({"object_id": ["7", "9", "1", "2", "3"], "ra": [10.0, 10.01, 10.02, 10.03, 10.04],
                        "dec": [0.5] * 5, "label": [1, 1, 0, 0, 0],
                        "subdir": ["mergers", "mergers", "nonmergers", "nonmergers", "nonmergers"],
                        "z": [0.05] * 5})
    bodies = [make_jpeg(1), make_jpeg(2), make_jpeg(3), make_blank_jpeg(), make_jpeg(5)]
    out = tmp_path / "cut"
    with FaultServer() as srv:
        for ra, body in zip(sel["ra"], bodies, strict=True):
            srv.script(ra, [ok(body)])
        report = fetch_cutouts(sel, out, srv.base_url, rate_per_s=None, timeout_s=5, max_retries=0,
                               progress=False, max_fail_fraction=0.5)
    assert report.n_failed == 1
    data = load_cutout_dir(out, size=64)
    assert list(data.object_id) == ["darg-7", "darg-9", "gz1-1", "gz1-3"]
    assert list(data.labels) == [1, 1, 0, 0] and data.images.shape == (4, 3, 64, 64)
    assert data.rejected == [("nonmergers/2.jpeg", "missing file")]
