"""deepmerge_da.predict: classifying your own cutouts gives the predictions evaluation gives, whatever the file format.

A tiny DeepMerge is trained once (module fixture) on a tiny pair whose source is in "physical" units and whose
target is in 8-bit JPEG counts, as sim2real; real components throughout (HDF5, training, evaluation, the SDSS
cutout fetcher against a real HTTP server on 127.0.0.1).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image

from deepmerge_da.cli import main as cli_main
from deepmerge_da.data.preprocess import prepare_image_set
from deepmerge_da.io.checkpoint import load_checkpoint, save_checkpoint
from deepmerge_da.io.hdf5 import ImageSet, read_image_set, write_image_set
from deepmerge_da.nn.models import build_network
from deepmerge_da.predict.ensemble import load_models, predict, predict_image_set
from deepmerge_da.predict.inputs import expand_inputs, input_files
from deepmerge_da.predict.outputs import skipped_path
from deepmerge_da.predict.readers import read_image
from deepmerge_da.report.evaluate import evaluate_run
from deepmerge_da.training.loop import train_run
from helpers import REAL_SDSS
from http_fault_server import FaultServer, Step, make_jpeg, ok

FILTERS = ["i", "r", "g"]
HP = {"lr": 1e-3, "beta1": 0.7, "beta2": 0.8, "eps": 1e-8, "weight_decay": 1e-4, "cycle": 2, "patience": 5,
      "lambda_tl": 1.0}
FAST_FETCH = dict(concurrency=2, rate_per_s=None, timeout_s=2.0, max_retries=1, backoff_s=0.01)


def _write_pair(root: Path) -> dict[str, Path]:
    """Source in 'nJy/pixel'-like values, target like 8-bit JPEG counts; 75x75, filters (i, r, g)."""
    rng = np.random.default_rng(0)
    paths = {}
    for dom, scale, offset, units in (("source", 50.0, 0.0, "nJy/pixel"), ("target", 20.0, 30.0, "8-bit JPEG counts")):
        n = 40
        labels = (np.arange(n) % 2).astype(np.int8)
        images = offset + scale * np.abs(rng.normal(size=(n, 3, 75, 75))).astype(np.float32)
        images[:, :, 30:45, 30:45] += labels[:, None, None, None] * 3.0 * scale
        raw = ImageSet(images.astype(np.float32), labels, np.array([f"{dom}{k}" for k in range(n)]),
                       {"filters": FILTERS, "units": units, "data_source": f"test {dom}"})
        paths[dom] = root / f"{dom}.h5"
        write_image_set(paths[dom], prepare_image_set(raw, filters=FILTERS, image_size=75, balance=False,
                                                      progress=False))
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    paths = _write_pair(root)
    checkpoints = []
    for seed in (1, 2):
        train_run(source=str(paths["source"]), target=str(paths["target"]), out_dir=str(root / f"seed{seed}"),
                  pair="sim2real", network="deepmerge", method="mmd", seed=seed, hp=HP, max_epochs=1,
                  batch_size=16, device="cpu", progress=False)
        checkpoints.append(root / f"seed{seed}" / "model.pt")
    evaluate_run(checkpoint=str(checkpoints[0]), source=str(paths["source"]), target=str(paths["target"]),
                 metrics_path=str(root / "metrics.json"), predictions_path=str(root / "predictions.csv"))
    evaluation = pd.read_csv(root / "predictions.csv", dtype={"object_id": str})
    return {"root": root, "paths": paths, "ckpt": checkpoints[0], "ckpt2": checkpoints[1], "evaluation": evaluation}


def _source_test_images(trained, k=3):
    test = read_image_set(trained["paths"]["source"], split="test")
    ev = trained["evaluation"].query("domain == 'source'")
    assert list(ev["object_id"]) == list(test.object_id)
    return test.images[:k], ev["p_merger"].to_numpy()[:k]


# --------------------------------------------------------------------------------------------------------------

def test_predict_image_set_equals_evaluation(trained):
    for domain in ("source", "target"):
        ev = trained["evaluation"].query("domain == @domain")
        df = predict_image_set(trained["paths"][domain], "test", trained["ckpt"], batch_size=7)
        assert list(df["object_id"]) == list(ev["object_id"]) and list(df["label"]) == list(ev["label"])
        assert np.allclose(df["p_merger"], ev["p_merger"], rtol=0, atol=1e-6), domain
        assert set(df["predicted"]) <= {"merger", "non-merger"}


def test_fits_cube_multi_extension_and_npy_agree(trained, tmp_path, caplog):
    images, expected = _source_test_images(trained)
    files = []
    for k, img in enumerate(images):
        np.save(tmp_path / f"npy{k}.npy", img)                                   # (C, H, W), model order
        np.save(tmp_path / f"hwc{k}.npy", np.moveaxis(img, 0, -1))               # (H, W, C)
        order = [2, 0, 1]                                                        # planes g, i, r
        cube = fits.PrimaryHDU(img[order])
        for j, f in enumerate(order):
            cube.header[f"FILTER{j + 1}"] = FILTERS[f]
        cube.writeto(tmp_path / f"cube{k}.fits")
        fits.PrimaryHDU(img).writeto(tmp_path / f"plain{k}.fits")              # unnamed: model order
        hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(img[f], header=fits.Header([("FILTER", FILTERS[f].upper())]))
                                      for f in (1, 2, 0)]                     # r, g, i; names in upper case
        hdus.append(fits.ImageHDU(np.zeros((5, 5), np.float32), header=fits.Header([("FILTER", "z")])))
        fits.HDUList(hdus).writeto(tmp_path / f"mef{k}.fits")
        files += [tmp_path / f"{s}{k}.{'npy' if s in ('npy', 'hwc') else 'fits'}" for s in
                  ("npy", "hwc", "cube", "plain", "mef")]
    two_bands = [fits.ImageHDU(images[0][f], header=fits.Header([("FILTER", FILTERS[f])])) for f in (0, 1)]
    missing = fits.HDUList([fits.PrimaryHDU()] + two_bands)
    missing.writeto(tmp_path / "no_g.fits")
    np.save(tmp_path / "four.npy", np.zeros((4, 75, 75), np.float32))
    out = tmp_path / "out" / "preds.csv"
    df = predict([*map(str, files), str(tmp_path / "no_g.fits"), str(tmp_path / "four.npy")], [trained["ckpt"]],
                 out, progress=False)
    assert list(df.columns) == ["id", "source", "p_merger", "label"]
    p = df.set_index("id")["p_merger"]
    for k in range(len(images)):
        for stem in ("npy", "hwc", "cube", "plain", "mef"):
            assert p[f"{stem}{k}"] == pytest.approx(expected[k], abs=1e-6), f"{stem}{k}"
    skipped = pd.read_csv(skipped_path(out)).set_index("id")
    assert set(skipped.index) == {"no_g", "four"}
    assert "['i', 'r', 'g']" in skipped.loc["no_g", "reason"] and "missing ['g']" in skipped.loc["no_g", "reason"]
    assert "needs 3 channels" in skipped.loc["four", "reason"] and "(4, 75, 75)" in skipped.loc["four", "reason"]
    assert any("no_g.fits" in r.message and r.levelname == "WARNING" for r in caplog.records)
    # read directly, the missing filter is an error naming the file, the filters needed and those found
    with pytest.raises(ValueError, match=r"no_g\.fits.*needs filters \['i', 'r', 'g'\].*\['i', 'r'\]"):
        read_image(tmp_path / "no_g.fits", need=FILTERS)
    # a cube whose planes are given another order with filters= is reordered like the named cube
    np.save(tmp_path / "gir.npy", images[0][[2, 0, 1]])
    df2 = predict([tmp_path / "gir.npy"], trained["ckpt"], None, progress=False, filters=["g", "i", "r"])
    assert df2["p_merger"].iloc[0] == pytest.approx(expected[0], abs=1e-6)
    # resizing: a 2x upsampled cube goes through the training resize, as NPY and as FITS alike
    big = np.repeat(np.repeat(images[0], 2, axis=1), 2, axis=2)
    np.save(tmp_path / "big.npy", big)
    fits.PrimaryHDU(big).writeto(tmp_path / "big.fits")
    df3 = predict([tmp_path / "big.npy", tmp_path / "big.fits"], trained["ckpt"], None, progress=False)
    assert df3["p_merger"].iloc[0] == pytest.approx(df3["p_merger"].iloc[1], abs=1e-7)


def test_real_sdss_jpegs_as_the_import_reads_them(trained, tmp_path):
    if not REAL_SDSS.is_dir():
        pytest.skip(f"no local SDSS cutouts at {REAL_SDSS}")
    from deepmerge_da.data.sdss_cutouts import load_cutout_dir

    merger_ids, nonmerger_ids = [1, 2, 3], ["1", "2"]
    cut = load_cutout_dir(REAL_SDSS, size=128, merger_ids=merger_ids, nonmerger_ids=nonmerger_ids)
    good = ([REAL_SDSS / "mergers" / f"{i}.jpeg" for i in merger_ids]
            + [REAL_SDSS / "nonmergers" / f"{i}.jpeg" for i in nonmerger_ids])
    for path, expected in zip(good, cut.images, strict=True):
        array, names = read_image(path)
        assert names == FILTERS and np.array_equal(array, expected.astype(np.float32))
    data = good[0].read_bytes()
    (tmp_path / "truncated.jpeg").write_bytes(data[: len(data) // 2])
    (tmp_path / "html.jpg").write_text("<html>rate limited</html>")
    inputs = [*map(str, good), str(tmp_path / "truncated.jpeg"), str(tmp_path / "html.jpg"),
              str(REAL_SDSS / "mergers" / "1943.jpeg"), str(tmp_path / "nothing_*.png")]
    out = tmp_path / "real.csv"
    df = predict(inputs, [trained["ckpt"]], out, progress=False)
    assert len(df) == len(good) and df["p_merger"].between(0, 1).all()
    assert list(df["source"]) == list(map(str, good))
    reasons = pd.read_csv(skipped_path(out)).set_index("source")["reason"]
    assert reasons[str(tmp_path / "truncated.jpeg")] == "truncated jpeg"
    assert reasons[str(tmp_path / "html.jpg")] == "not a jpeg"
    assert reasons[str(REAL_SDSS / "mergers" / "1943.jpeg")] == "empty body"
    assert reasons[str(tmp_path / "nothing_*.png")] == "no file matches this pattern"


def test_jpeg_uses_the_jpeg_domain_statistics_and_png_agrees(trained, tmp_path):
    """An RGB JPEG is read as 8-bit (i, r, g) counts and standardised with the JPEG-unit domain's statistics:
    the same p as that array as NPY with normalisation='other_domain'."""
    jpeg = tmp_path / "gal.jpeg"
    jpeg.write_bytes(make_jpeg(5, 128))
    array, _ = read_image(jpeg)
    np.save(tmp_path / "gal_array.npy", array)
    Image.fromarray(array.transpose(1, 2, 0).astype(np.uint8), "RGB").save(tmp_path / "gal_png.png")
    a = predict([jpeg, tmp_path / "gal_png.png"], trained["ckpt"], None, progress=False)
    b = predict([tmp_path / "gal_array.npy"], trained["ckpt"], None, progress=False, normalisation="other_domain")
    c = predict([tmp_path / "gal_array.npy"], trained["ckpt"], None, progress=False)  # auto: trained_on
    assert a["p_merger"].iloc[0] == pytest.approx(b["p_merger"].iloc[0], abs=1e-7)
    assert a["p_merger"].iloc[1] == pytest.approx(b["p_merger"].iloc[0], abs=1e-7)
    assert c["p_merger"].iloc[0] != pytest.approx(b["p_merger"].iloc[0], abs=1e-6)


def test_two_checkpoints_make_an_ensemble(trained, tmp_path):
    images, _ = _source_test_images(trained, 4)
    for k, img in enumerate(images):
        np.save(tmp_path / f"g{k}.npy", img)
    out = tmp_path / "ens.csv"
    df = predict([str(tmp_path)], [trained["ckpt"], trained["ckpt2"]], out, threshold=0.3, progress=False)
    assert list(df.columns) == ["id", "source", "p_merger", "label", "p_merger_std", "p_merger_0", "p_merger_1"]
    one = predict([str(tmp_path / "*.npy")], [trained["ckpt"]], None, progress=False)
    two = predict([str(tmp_path / "*.npy")], [trained["ckpt2"]], None, progress=False)
    assert np.allclose(df["p_merger_0"], one["p_merger"], atol=1e-7)
    assert np.allclose(df["p_merger_1"], two["p_merger"], atol=1e-7)
    assert np.allclose(df["p_merger"], (one["p_merger"] + two["p_merger"]) / 2, atol=1e-7)
    assert np.allclose(df["p_merger_std"], np.std([one["p_merger"], two["p_merger"]], axis=0, ddof=1), atol=1e-7)
    assert list(df["label"]) == ["merger" if p >= 0.3 else "non-merger" for p in df["p_merger"]]
    written = pd.read_csv(out, dtype={"id": str})
    assert np.allclose(written["p_merger"], df["p_merger"], atol=1e-8) and len(written) == 4
    # checkpoints that disagree on their input are refused, naming both files
    state, meta = load_checkpoint(trained["ckpt"])
    meta["input"]["trained_on"]["image_size"] = 64
    model = build_network("deepmerge")
    model.load_state_dict(state)
    other = tmp_path / "other" / "model.pt"
    save_checkpoint(other, model, meta)
    with pytest.raises(ValueError, match=rf"image_size.*{trained['ckpt']}.*75.*{other}.*64"):
        load_models([trained["ckpt"], other])


def test_catalogue_cutouts_from_a_local_server(trained, tmp_path):
    bodies = {k: make_jpeg(100 + k) for k in range(3)}
    with FaultServer() as srv:
        for k in range(3):
            srv.script(10.0 + 0.01 * k, [ok(bodies[k])])
        srv.script(20.0, [Step(500), Step(500), Step(500)])                      # fails after its retries
        # ra 30.0 is not scripted: the server answers 404
        catalogue = tmp_path / "my_galaxies.csv"
        catalogue.write_text("ID,RA,Dec,comment\n"
                             "a0,10.00,1.0,x\na1,10.01,1.0,x\na2,10.02,1.0,x\n"
                             "err,20.0,1.0,server error\nmissing,30.0,1.0,404\n"
                             "bad,not-a-number,1.0,bad ra\na0,10.00,1.0,repeated id\n")
        cache = tmp_path / "cache"
        out = tmp_path / "cat.csv"
        df = predict([catalogue], trained["ckpt"], out, cache_dir=cache, sdss_base_url=srv.base_url,
                     fetch_options=FAST_FETCH, progress=False)
        assert list(df["id"]) == ["a0", "a1", "a2"]
        assert all(Path(s).parent == cache / "my_galaxies" / "cutouts" for s in df["source"])
        reasons = pd.read_csv(skipped_path(out), dtype=str).set_index("id")["reason"]
        assert "repeated" in reasons["a0"] and "http 500" in reasons["err"] and "http 404" in reasons["missing"]
        assert "bad position" in reasons["bad"]
        # the same bytes as a local file give the same p; a rerun reads the cache without a request
        for k in range(3):
            (tmp_path / f"local{k}.jpeg").write_bytes(bodies[k])
        local = predict([tmp_path / f"local{k}.jpeg" for k in range(3)], trained["ckpt"], None, progress=False)
        assert np.allclose(local["p_merger"], df["p_merger"], atol=1e-7)
        before = srv.count(10.0)
        again = predict([catalogue], trained["ckpt"], None, cache_dir=cache, sdss_base_url=srv.base_url,
                        fetch_options=FAST_FETCH, progress=False)
        assert srv.count(10.0) == before == 1 and np.allclose(again["p_merger"], df["p_merger"])


def test_nothing_classifiable_is_an_error_and_inputs_expand(trained, tmp_path):
    (tmp_path / "broken.jpeg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(ValueError, match="no input could be classified.*broken.jpeg"):
        predict([tmp_path / "broken.jpeg", tmp_path / "absent.fits"], trained["ckpt"], tmp_path / "o.csv",
                progress=False)
    assert not (tmp_path / "o.csv").exists() and (tmp_path / "o.skipped.csv").exists()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.npy").write_bytes(b"")
    (tmp_path / "sub" / "notes.txt").write_text("-")
    (tmp_path / "sub" / "list.csv").write_text("id,ra,dec\n")
    files, skipped = expand_inputs([tmp_path / "sub", str(tmp_path / "sub" / "*.txt"), tmp_path / "gone.png"])
    assert files == [tmp_path / "sub" / "x.npy"]
    assert [s.reason for s in skipped] == ["unsupported file type (not FITS, JPEG, PNG, NPY or a CSV catalogue)",
                                          "missing file"]
    assert input_files([str(tmp_path / "sub" / "*.npy"), "later/built.fits"]) == [str(tmp_path / "sub" / "x.npy"),
                                                                                 "later/built.fits"]


def test_cli_predict(trained, tmp_path, capsys):
    out = subprocess.run([sys.executable, "-m", "deepmerge_da.cli", "predict", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "--model" in out.stdout and "--cache-dir" in out.stdout
    images, expected = _source_test_images(trained, 2)
    for k, img in enumerate(images):
        np.save(tmp_path / f"c{k}.npy", img)
    (tmp_path / "bad.npy").write_text("garbage")
    csv = tmp_path / "cli.csv"
    rc = cli_main(["predict", str(tmp_path / "c*.npy"), str(tmp_path / "bad.npy"), "--model", str(trained["ckpt"]),
                   "--model", str(trained["ckpt2"]), "--out", str(csv), "--threshold", "0.4", "--no-progress"])
    assert rc == 0
    df = pd.read_csv(csv, dtype={"id": str})
    assert list(df["id"]) == ["c0", "c1"] and "p_merger_std" in df.columns
    assert "2 classified" in capsys.readouterr().out
    rc = cli_main(["predict", str(tmp_path / "bad.npy"), "--model", str(trained["ckpt"]), "--out",
                   str(tmp_path / "none.csv"), "--no-progress"])
    assert rc == 2 and "bad.npy" in capsys.readouterr().err


def test_cli_predict_refuses_a_directory_as_out_before_writing(trained, tmp_path, capsys):
    images, _ = _source_test_images(trained, 1)
    np.save(tmp_path / "g.npy", images[0])
    (tmp_path / "bad.npy").write_text("garbage")  # a skipped input: today's skipped list is written first
    out = tmp_path / "results"
    out.mkdir()
    rc = cli_main(["predict", str(tmp_path / "g.npy"), str(tmp_path / "bad.npy"), "--model", str(trained["ckpt"]),
                   "--out", str(out), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and err == [f"deepmerge-da predict: error: output {out} is a directory; give the predictions CSV "
                               f"file to write (e.g. {out / 'predictions.csv'})"]
    assert not skipped_path(out).exists() and list(out.iterdir()) == []
