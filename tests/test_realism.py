"""The realism check of the sim2real sets (deepmerge_da.report.realism), bad real-cutout directories, and the
opt-in SkyServer-like rendering of the synthetic source (source_rendering: skyserver).

The real-data test reads the local copy of SDSS cutouts at ../shared/data/sdss-galaxyzoo (relative to the
repository root) and is skipped when it is absent.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepmerge_da.data.sdss_cutouts import load_cutout_dir
from deepmerge_da.data.synthetic import Sim2RealParams, render_sim2real_source
from deepmerge_da.data.synthetic.parameters import ParameterError
from deepmerge_da.report import realism
from deepmerge_da.report.realism import (
    MIN_OBJECTS,
    RealismError,
    half_light_radii,
    luminance_signal,
    realism_statistics,
    summarise_rejections,
)
from helpers import REAL_SDSS, needs_real_sdss
from http_fault_server import make_jpeg


def _gaussian(size: int, sigma: float, amplitude: float = 1.0) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2.0
    return amplitude * np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * sigma**2))


def test_half_light_radius_of_a_gaussian_blob():
    # A circular Gaussian of width sigma encloses half its light within sigma * sqrt(2 ln 2).
    for sigma in (2.0, 4.0, 6.0):
        r = half_light_radii(_gaussian(75, sigma)[None])[0]
        assert r == pytest.approx(sigma * math.sqrt(2 * math.log(2)), abs=0.12)
    assert np.isnan(half_light_radii(np.zeros((1, 9, 9)))[0])


def test_statistics_against_numpy():
    rng = np.random.default_rng(0)
    n = MIN_OBJECTS
    images = rng.normal(10.0, 1.0, (n, 3, 33, 33))
    images[:, :, 14:19, 14:19] += rng.exponential(20.0, (n, 3, 1, 1))  # bright cores: a skewed set
    images[:, 0] *= 2.0  # channel i twice channel g
    stats = realism_statistics("hand-made", images)
    z = (images - images.mean(axis=(0, 2, 3), keepdims=True)) / images.std(axis=(0, 2, 3), keepdims=True)
    assert stats["skewness"] == pytest.approx(np.mean(z**3))
    assert stats["fraction_above_2sigma"] == pytest.approx(np.count_nonzero(z > 2) / z.size)
    assert stats["colour_i_over_g"] == pytest.approx(images[:, 0].mean() / images[:, 2].mean())
    assert stats["colour_i_over_g"] == pytest.approx(2.0, rel=0.05)

    # peak / noise: border rows of the luminance map alternate 0 and 2 (median 1, std 1); a peak of 51 above 1.
    flat = np.zeros((n, 3, 21, 21))
    lum = np.ones((21, 21))
    border = np.r_[0:5, 16:21]
    lum[border] = np.where((np.arange(21)[None] + border[:, None]) % 2 == 0, 0.0, 2.0)
    lum[10, 10] = 51.0
    flat[:, 1] = lum
    signal, noise = luminance_signal(flat)
    assert np.allclose(noise, np.std(lum[border]))
    assert signal[0, 10, 10] == pytest.approx(51.0 - np.median(lum[border]))
    assert realism_statistics("flat", flat)["peak_over_noise"] == pytest.approx(
        (51.0 - np.median(lum[border])) / np.std(lum[border]))


def test_refuses_small_sets():
    with pytest.raises(RealismError, match=r"set 'real SDSS post-mergers' has 99 objects.*at least 100"):
        realism.realism_table({"real SDSS post-mergers": np.zeros((99, 3, 8, 8))})
    with pytest.raises(RealismError, match="'grey':.*shape"):
        realism.realism_statistics("grey", np.zeros((120, 1, 8, 8)))


def _jpeg(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_bad_cutout_directory_reported_by_name_and_count(tmp_path, caplog):
    root = tmp_path / "cutouts"
    root.mkdir()
    pd.DataFrame({"id": [1, 2, 3, 4, 5], "stage": [3] * 5, "ra1": [10.0, 11.0, 12.0, 13.0, 14.0],
                  "dec1": [1.0] * 5, "specz1": [0.05] * 5}).to_csv(root / "darg_mergers.csv", index=False)
    pd.DataFrame({"ID": [1, 2], "RAdeg": [20.0, 21.0], "DEdeg": [0.0, 0.0], "zsp": [0.05, 0.06],
                  "P_MG": [0.0, 0.1], "SDSS": ["J1", "J2"]}).to_csv(root / "nonmergers.csv", index=False)
    _jpeg(root / "mergers/1.jpeg", make_jpeg(1))
    _jpeg(root / "mergers/2.jpeg", make_jpeg(2, size=64))  # another size
    grey = io.BytesIO()
    Image.fromarray((np.arange(128 * 128) % 251).astype(np.uint8).reshape(128, 128)).save(grey, "JPEG")
    _jpeg(root / "mergers/3.jpeg", grey.getvalue())  # a grey (one-channel) JPEG
    _jpeg(root / "mergers/5.jpeg", make_jpeg(2, size=96))  # another size; mergers/4.jpeg is missing
    _jpeg(root / "mergers/9.jpeg", make_jpeg(9))  # no catalogue row
    for k in (1, 2, 77):  # nonmergers/77.jpeg: no catalogue row
        _jpeg(root / f"nonmergers/{k}.jpeg", make_jpeg(10 + k))
    with caplog.at_level("WARNING"):
        data = load_cutout_dir(root, size=32)
    assert list(data.object_id) == ["darg-1", "gz1-1", "gz1-2"]
    assert dict(data.rejected) == {"mergers/2.jpeg": "wrong size 64x64 (expected 128x128)",
                                   "mergers/3.jpeg": "not an RGB jpeg (mode L)", "mergers/4.jpeg": "missing file",
                                   "mergers/5.jpeg": "wrong size 96x96 (expected 128x128)"}
    assert data.unlisted == ["mergers/9.jpeg", "nonmergers/77.jpeg"]
    assert "2 image files have no catalogue row" in caplog.text and "mergers/9.jpeg" in caplog.text
    lines = summarise_rejections(data.rejected)
    assert "missing file: 1 (mergers/4.jpeg)" in lines
    assert "not an RGB jpeg (mode L): 1 (mergers/3.jpeg)" in lines
    assert len(lines) == 4  # the two sizes are two reasons, each named with its count


def test_skyserver_source_is_opt_in():
    assert Sim2RealParams().source_rendering == "mock"
    with pytest.raises(ParameterError, match="source_rendering"):
        Sim2RealParams(source_rendering="hst")
    p = Sim2RealParams(source_n_objects=6, source_rendering="skyserver", source_cutout_pixels=64, image_size=40)
    a = render_sim2real_source(p, seed=2, progress=False)
    b = render_sim2real_source(p, seed=2, progress=False)
    assert a.images.shape == (6, 3, 40, 40) and a.images.dtype == np.float32
    assert np.array_equal(a.images, b.images) and np.array_equal(a.images, np.round(a.images))
    assert a.images.min() >= 0 and a.images.max() <= 255 and a.filters == ("g", "r", "i")
    lo, hi = p.source_redshift_range
    assert ((a.catalog["redshift"] >= lo) & (a.catalog["redshift"] <= hi)).all()
    assert np.isfinite(a.catalog["seeing_fwhm_arcsec"]).all()
    assert a.pixel_scale == pytest.approx(p.target_pixel_scale * 64 / 40)
    assert "8-bit" in a.meta["units"]
    mock = render_sim2real_source(p.replace(source_rendering="mock"), seed=2, progress=False)
    assert np.isnan(mock.catalog["redshift"]).all() and mock.images.dtype == np.float32


@needs_real_sdss
def test_realism_report_on_real_cutouts(tmp_path):
    sets, notes = realism.real_sets(REAL_SDSS, max_nonmergers=MIN_OBJECTS, seed=1)
    assert len(sets["real SDSS post-mergers"]) >= MIN_OBJECTS and len(sets["real SDSS non-mergers"]) == MIN_OBJECTS
    sets.update(realism.synthetic_sets({}, seed=1, n_objects=MIN_OBJECTS))
    table = realism.write_realism_report(sets, tmp_path / "realism", "real: sdss-galaxyzoo (test)", notes)
    assert {p.name for p in (tmp_path / "realism").iterdir()} == {"table.csv", "table.md", "histograms.csv",
                                                                  "montage.png"}
    table = table.set_index("set")
    real = table.loc["real SDSS non-mergers"]
    # the real cutouts' figures of the open issue (docs/realism.md): skewness ~4, 5 % above 2 sigma, i/g ~1.7
    assert 3.0 < real["skewness"] < 5.5 and 0.035 < real["fraction_above_2sigma"] < 0.065
    assert 1.4 < real["colour_i_over_g"] < 2.1 and 8 < real["half_light_radius_px"] < 14
    assert table.loc["synthetic source", "skewness"] > 2 * real["skewness"]  # today's source: far too peaked
    md = (tmp_path / "realism" / "table.md").read_text()
    assert "sdss-galaxyzoo" in md and "| skewness of standardised pixels |" in md
    hist = pd.read_csv(tmp_path / "realism" / "histograms.csv")
    assert set(hist["set"]) == set(sets) and set(hist["channel"]) == {"i", "r", "g"}
