"""`deepmerge-da fetch` (cli.main, in this process) against a real HTTP server on 127.0.0.1 (http_fault_server.py).

The directory it fills is read back with the workflow's own local-cutout reader (sdss_local.load_cutout_dir).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepmerge_da.cli import build_parser, main
from deepmerge_da.data.catalogues import build_selection
from deepmerge_da.data.fetch import cutout_url
from deepmerge_da.data.sdss_cutouts import load_cutout_dir
from http_fault_server import FaultServer, Step, make_jpeg, ok

FAST = ["--rate-per-s", "0", "--timeout-s", "2", "--max-retries", "1", "--backoff-s", "0.01", "--concurrency", "2"]


def fetch(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["fetch", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(out) -> pd.DataFrame:
    man = pd.read_csv(out / "manifest.csv", dtype={"object_id": str}, keep_default_na=False)
    return man.set_index("object_id")


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)


def test_catalogue_csv_fetch_resume_manifest_and_local_reader(tmp_path, capsys, caplog):
    # (id, label, dec); ra = 30 + 0.01 * row
    rows = [("m1", "merger", 1.0), ("7", "1", 1.0), ("n1", "non-merger", 1.0), ("n2", "0", 1.0),
            ("n3", "NonMerger", 1.0), ("gone", "0", 1.0), ("far", "0", 95.0), ("odd", "maybe", 1.0)]
    ras = {oid: 30 + 0.01 * k for k, (oid, _, _) in enumerate(rows)}
    cat = tmp_path / "mine.csv"
    pd.DataFrame({"ID": [r[0] for r in rows], "RA": list(ras.values()), "Dec": [r[2] for r in rows],
                  "Label": [r[1] for r in rows], "z": 0.05}).to_csv(cat, index=False)
    valid = {"m1": "mergers", "7": "mergers", "n1": "nonmergers", "n2": "nonmergers", "n3": "nonmergers"}
    body = {oid: make_jpeg(k) for k, oid in enumerate(ras)}
    out = tmp_path / "cutouts"
    args = [str(cat), "--out", str(out), "--max-fail-fraction", "0.2", *FAST]
    with FaultServer() as srv:
        for oid, ra in ras.items():
            srv.script(ra, [Step(404)] if oid == "gone" else [ok(body[oid])])
        with caplog.at_level("WARNING"):
            rc, stdout, stderr = fetch(capsys, *args, "--base-url", srv.base_url)
        assert rc == 0, stderr
        assert f"5 fetched, 0 already there, 1 failed of 6 cutouts (2 catalogue rows dropped) -> {out}" in stdout
        assert "cutouts" in stderr and "6/6" in stderr  # the progress bar
        assert "far: dec out of range: 95.0" in caplog.text and "odd: label 'maybe'" in caplog.text
        assert srv.count(ras["far"]) == srv.count(ras["odd"]) == 0
        first = {oid: srv.count(ra) for oid, ra in ras.items()}
        assert all(first[oid] == 1 for oid in [*valid, "gone"])
        for oid, sub in valid.items():
            assert (out / sub / f"{oid}.jpeg").read_bytes() == body[oid]
        man = read_manifest(out)
        assert dict(man["status"]) == {**{oid: "ok" for oid in valid}, "gone": "failed"}
        assert man.loc["gone", "reason"] == "http 404" and man.loc["m1", "bytes"] == len(body["m1"])
        summary = json.loads((out / "fetched.json").read_text())
        assert summary["fetched"] == 5 and summary["failed"] == 1 and summary["failure_reasons"] == {"http 404": 1}
        assert summary["catalogues"] == {str(cat): sha256(cat)}

        # resumed: the same command requests only the failed object again
        rc, stdout, stderr = fetch(capsys, *args, "--base-url", srv.base_url, "--no-progress")
        assert rc == 0, stderr
        assert "0 fetched, 5 already there, 1 failed of 6 cutouts" in stdout and "6/6" not in stderr
        again = {oid: srv.count(ra) - first[oid] for oid, ra in ras.items()}
        assert again == {**{oid: 0 for oid in ras}, "gone": 1}
    man = read_manifest(out)
    assert dict(man["status"]) == {**{oid: "skipped_existing" for oid in valid}, "gone": "failed"}

    loaded = load_cutout_dir(out, size=128)
    ids = list(loaded.object_id)
    want = {("darg-" if sub == "mergers" else "gz1-") + oid: oid for oid, sub in valid.items()}
    assert sorted(ids) == sorted(want)
    for k, name in enumerate(ids):
        assert loaded.labels[k] == (1 if name.startswith("darg-") else 0)
        assert np.array_equal(loaded.images[k], pixels(body[want[name]]))
        assert loaded.ra[k] == pytest.approx(ras[want[name]])
    assert loaded.rejected == [("nonmergers/gone.jpeg", "missing file")]


def test_darg_and_gz1_selection_as_the_workflow_makes_it(tmp_path, capsys):
    stages = [3, 1, 3, 3, 2, 3]  # Darg row number (1-based) = object id
    darg = tmp_path / "darg.csv"
    pd.DataFrame({"ra1": [150 + 0.01 * i for i in range(1, 7)], "dec1": 1.0, "specz1": 0.05,
                  "stage": stages}).to_csv(darg, index=False)
    gz1_ids = list(range(201, 211))  # 203 fails the z cut, 204 the f_m cut
    gz1 = tmp_path / "gz1.csv"
    pd.DataFrame({"ID": gz1_ids, "RAdeg": [200 + 0.01 * (i - 200) for i in gz1_ids], "DEdeg": 2.0,
                  "zsp": [0.2 if i == 203 else 0.05 for i in gz1_ids],
                  "P_MG": [0.5 if i == 204 else 0.05 for i in gz1_ids]}).to_csv(gz1, index=False)
    out = tmp_path / "sdss"
    with FaultServer() as srv:
        for i in range(1, 7):
            srv.script(150 + 0.01 * i, [ok(make_jpeg(i))])
        for i in gz1_ids:
            srv.script(200 + 0.01 * (i - 200), [ok(make_jpeg(i))])
        rc, stdout, stderr = fetch(capsys, "--darg", str(darg), "--gz1", str(gz1), "--n-nonmergers", "4",
                                   "--seed", "3", "--out", str(out), "--base-url", srv.base_url, "--no-progress",
                                   *FAST)
    assert rc == 0, stderr
    assert "8 fetched, 0 already there, 0 failed of 8 cutouts" in stdout
    expected = build_selection(darg, gz1, n_nonmergers=4, seed=3).table  # what rule select_sdss_objects writes
    got = pd.read_csv(out / "catalogue.csv", dtype={"object_id": str})
    assert list(got["object_id"]) == list(expected["object_id"]) and list(got["subdir"]) == list(expected["subdir"])
    assert sorted(p.stem for p in (out / "mergers").glob("*.jpeg")) == ["1", "3", "4", "6"]
    nonmergers = {p.stem for p in (out / "nonmergers").glob("*.jpeg")}
    assert len(nonmergers) == 4 and not nonmergers & {"203", "204"} and nonmergers <= {str(i) for i in gz1_ids}
    assert json.loads((out / "fetched.json").read_text())["catalogues"] == {str(darg): sha256(darg),
                                                                            str(gz1): sha256(gz1)}
    loaded = load_cutout_dir(out, size=75)
    assert int(loaded.labels.sum()) == 4 and len(loaded) == 8 and loaded.images.shape == (8, 3, 75, 75)


def test_redirect_option_and_one_label_for_every_row(tmp_path, capsys):
    cat = tmp_path / "moved.csv"
    pd.DataFrame({"object_id": ["a", "b"], "ra": [40.0, 40.01], "dec": [1.0, 1.0]}).to_csv(cat, index=False)
    out = tmp_path / "c"
    with FaultServer() as srv, FaultServer() as other:
        origin = f"http://127.0.0.1:{other.port}"
        srv.script(40.0, [Step(302, headers=(("Location", cutout_url(other.base_url, 40.0, 1.0)),))])
        srv.script(40.01, [ok(make_jpeg(2))])
        other.script(40.0, [ok(make_jpeg(1))])
        common = [str(cat), "--label", "non-merger", "--out", str(out), "--base-url", srv.base_url, "--no-progress",
                  *FAST]
        rc, stdout, stderr = fetch(capsys, *common, "--max-fail-fraction", "1")
        assert rc == 0, stderr
        man = read_manifest(out)
        assert man.loc["a", "reason"] == f"redirect to another host refused: {origin} (not in allow_redirect_hosts)"
        assert other.count(40.0) == 0
        rc, stdout, stderr = fetch(capsys, *common, "--allow-redirect-host", origin)
        assert rc == 0, stderr
        assert other.count(40.0) == 1
    assert (out / "nonmergers/a.jpeg").read_bytes() == make_jpeg(1)
    assert sorted(p.name for p in (out / "nonmergers").iterdir()) == ["a.jpeg", "b.jpeg"]
    assert list((out / "mergers").iterdir()) == []  # there, empty, as the reader needs it
    assert len(load_cutout_dir(out, size=64)) == 2


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    assert fetch(capsys, str(missing), "--out", str(tmp_path / "o")) == (
        2, "", f"deepmerge-da fetch: error: catalogue file not found: {missing}\n")
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("id,ra,dec\na,10,1\n")
    rc, _, stderr = fetch(capsys, str(unlabelled), "--out", str(tmp_path / "o"))
    assert rc == 2 and stderr.count("\n") == 1
    assert str(unlabelled) in stderr and "no column 'label'" in stderr
    rc, _, stderr = fetch(capsys, str(unlabelled), "--darg", "d.fits", "--gz1", "g.csv", "--out", str(tmp_path / "o"))
    assert rc == 2 and "not both" in stderr
    rc, _, stderr = fetch(capsys, "--darg", "d.fits", "--out", str(tmp_path / "o"))
    assert rc == 2 and "both --darg and --gz1" in stderr
    assert not (tmp_path / "o").exists()

    cat = tmp_path / "two.csv"
    cat.write_text("id,ra,dec,label\ngood,50.0,1.0,1\nbad,50.01,1.0,0\n")
    out = tmp_path / "c"
    with FaultServer() as srv:
        srv.script(50.0, [ok(make_jpeg(1))])
        srv.script(50.01, [Step(404)])
        common = [str(cat), "--out", str(out), "--base-url", srv.base_url, "--no-progress", *FAST]
        assert fetch(capsys, *common, "--max-fail-fraction", "0.5")[0] == 0
        assert (out / "fetched.json").is_file()
        rc, _, stderr = fetch(capsys, *common)  # the default bound, 5 %: too many failed now
        base_url = srv.base_url
    assert rc == 2 and stderr.count("\n") == 1 and stderr.startswith("deepmerge-da fetch: error: 1 of 2 cutouts")
    assert str(out / "manifest.csv") in stderr and base_url in stderr
    assert not (out / "fetched.json").exists()  # the earlier one no longer says the directory is complete
    assert (out / "mergers/good.jpeg").read_bytes() == make_jpeg(1)


def test_help_explains_inputs_outputs_resume_and_every_option(capsys):
    with pytest.raises(SystemExit) as done:
        main(["fetch", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for words in ("inputs", "CATALOGUE", "--darg, --gz1", "outputs", "mergers/<id>.jpeg", "catalogue.csv",
                  "manifest.csv", "fetched.json", "resume:", "not requested again", "examples:",
                  "deepmerge-da fetch my_galaxies.csv --out"):
        assert words in text, words
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    fetch_parser = commands.choices["fetch"]
    for action in fetch_parser._actions:
        assert action.help and all(opt in text for opt in action.option_strings), action.dest
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "fetch" in capsys.readouterr().out
