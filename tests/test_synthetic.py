"""Tests of the embedded synthetic universe (deepmerge_da.data.synthetic) and observation steps (observe)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepmerge_da.data import observe
from deepmerge_da.data import synthetic as S

# --------------------------------------------------------------------------- fixtures
SMALL = S.Sim2SimParams(n_mergers=10, n_nonmergers=8)
SMALL_REAL = S.Sim2RealParams(source_n_objects=12, source_merger_fraction=0.5,
                              target_n_objects=12, target_merger_fraction=0.5)


@pytest.fixture(scope="module")
def sim2sim_set():
    return S.render_sim2sim(SMALL, seed=7, threads=1, progress=False)


@pytest.fixture(scope="module")
def physics_pair():
    """A larger sim2sim set and the same objects without tidal features."""
    p = S.Sim2SimParams(n_mergers=60, n_nonmergers=60)
    with_tidal = S.render_sim2sim(p, seed=11, progress=False)
    without = S.render_sim2sim(p.replace(tidal_fraction=0.0), seed=11, progress=False)
    return p, with_tidal, without


@pytest.fixture(scope="module")
def real_source():
    return S.render_sim2real_source(SMALL_REAL, seed=3, progress=False)


@pytest.fixture(scope="module")
def real_target():
    return S.render_sim2real_target(SMALL_REAL, seed=3, progress=False)


def _fwhm_from_moments(img: np.ndarray) -> float:
    """FWHM (pixels) of a circular Gaussian with the image's second moments."""
    yy, xx = np.indices(img.shape, dtype=float)
    f = img.sum()
    xc, yc = (img * xx).sum() / f, (img * yy).sum() / f
    var = 0.5 * ((img * (xx - xc) ** 2).sum() + (img * (yy - yc) ** 2).sum()) / f
    return math.sqrt(var) * observe.FWHM_PER_SIGMA


def _asymmetry(img: np.ndarray) -> float:
    """Rotational asymmetry about the brightest central pixel (Conselice 2000 without background)."""
    n = img.shape[0]
    c = (n - 1) // 2
    sub = img[c - 10 : c + 11, c - 10 : c + 11]
    yy, xx = np.unravel_index(np.argmax(sub), sub.shape)
    yy, xx = yy + c - 10, xx + c - 10
    h = min(yy, xx, n - 1 - yy, n - 1 - xx, 25)
    cut = img[yy - h : yy + h + 1, xx - h : xx + h + 1]
    return float(np.abs(cut - cut[::-1, ::-1]).sum() / (2 * np.abs(cut).sum()))


# --------------------------------------------------------------------------- parameters
def test_params_from_dict_roundtrip_and_unknown_key():
    d = {"n_mergers": 3, "n_nonmergers": 4, "psf_fwhm_arcsec": [0.1, 0.12, 0.2], "tidal_peak_sigma": [0.2, 0.4]}
    p = S.Sim2SimParams.from_dict(d)
    assert p.n_mergers == 3 and p.psf_fwhm_arcsec == (0.1, 0.12, 0.2)
    assert S.Sim2SimParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="tidal_brightnes"):
        S.Sim2SimParams.from_dict({"tidal_brightnes": 1.0})
    with pytest.raises(ValueError, match="bogus_key"):
        S.Sim2RealParams.from_dict({"bogus_key": 1})
    with pytest.raises(ValueError):
        S.Sim2SimParams(tidal_fraction=1.5)
    assert S.Sim2RealParams.from_dict(SMALL_REAL.to_dict()) == SMALL_REAL
    for cls in (S.Sim2SimParams, S.Sim2RealParams):
        for name, info in cls.describe().items():
            assert info["doc"], f"{cls.__name__}.{name} lacks a justification"


def test_default_scales_match_astropy_cosmology():
    p = S.Sim2SimParams()
    assert p.kpc_per_arcsec == pytest.approx(S.kpc_per_arcsec(p.redshift), rel=0.01)
    r = S.Sim2RealParams()
    assert r.source_pixel_scale == pytest.approx(0.24 / S.kpc_per_arcsec(0.05), rel=1e-9)


# --------------------------------------------------------------------------- sim2sim basics
def test_sim2sim_shapes_labels_ids(sim2sim_set):
    s = sim2sim_set
    n = SMALL.n_mergers + SMALL.n_nonmergers
    assert s.images.shape == (n, 3, 75, 75) and s.images.dtype == np.float32
    assert s.labels.dtype == np.int8 and s.labels.shape == (n,)
    assert (s.labels == 1).sum() == SMALL.n_mergers and (s.labels == 0).sum() == SMALL.n_nonmergers
    assert s.object_id.dtype == np.int64 and np.unique(s.object_id).size == n
    assert s.filters == ("F814W", "F356W", "F160W") and s.pixel_scale == 0.06
    assert np.isfinite(s.images).all() and s.images.min() >= 0.0
    assert all(v.shape[0] == n for v in s.catalog.values())
    assert s.meta["units"] == "nJy/pixel" and len(s.meta["target_sky_sigma_njy"]) == 3
    # merger truth is consistent with labels
    assert ((s.catalog["merger_type"] > 0) == (s.labels == 1)).all()
    # every image holds a galaxy of roughly the requested F160W magnitude range (system total)
    mags = observe.njy_to_mag(s.images[:, 2].sum(axis=(1, 2)))
    assert (mags > 21.0).all() and (mags < 26.0).all()


def test_sim2sim_determinism():
    p = S.Sim2SimParams(n_mergers=3, n_nonmergers=3)
    a = S.render_sim2sim(p, seed=42, threads=1, progress=False)
    b = S.render_sim2sim(p, seed=42, threads=1, progress=False)
    c = S.render_sim2sim(p, seed=42, threads=2, progress=False)
    d = S.render_sim2sim(p, seed=43, threads=1, progress=False)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.images, c.images) and np.array_equal(a.labels, c.labels)
    assert np.array_equal(a.object_id, c.object_id)
    assert not np.array_equal(a.images, d.images)
    assert not np.intersect1d(a.object_id, d.object_id).size
    s1, t1 = S.observe_sim2sim(a, p, seed=1)
    s2, t2 = S.observe_sim2sim(c, p, seed=1)
    assert np.array_equal(t1, t2)


# --------------------------------------------------------------------------- noise and PSF
def test_sky_noise_sigma_formula_by_hand():
    # F160W: 2^-0.5 * (3631e9/5) * 10^(-0.4*25) * 0.06" * 3 * 0.18"
    by_hand = 0.7071067811865476 * 7.262e11 * 1e-10 * 0.06 * 0.54
    assert observe.sky_noise_sigma(25.0, 0.06, 0.18) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(1.6637, rel=1e-4)
    sig = S.Sim2SimParams().sky_sigma()
    assert sig == pytest.approx([by_hand * 0.09 / 0.18, by_hand * 0.13 / 0.18, by_hand], rel=1e-12)
    assert observe.limiting_sb_from_sigma(by_hand, 0.06, 0.18) == pytest.approx(25.0, abs=1e-10)


def test_added_noise_hits_limiting_surface_brightness():
    p = S.Sim2SimParams()
    sig = p.sky_sigma()
    blank = np.zeros((3, 300, 300), dtype=np.float32)
    noisy = observe.add_sky_noise(blank, sig, np.random.default_rng(0))
    assert noisy.dtype == np.float32
    measured = noisy.std(axis=(1, 2))
    assert measured == pytest.approx(sig, rel=0.02)
    sb = observe.limiting_sb_from_sigma(measured, p.pixel_scale, np.array(p.psf_fwhm_arcsec), nsigma=5)
    assert np.all(np.abs(sb - 25.0) < 0.05), sb


def test_psf_conserves_flux_and_gives_requested_fwhm():
    fwhm = (0.09, 0.13, 0.18)
    delta = np.zeros((3, 75, 75))
    delta[:, 37, 37] = 1.0
    out = observe.convolve_psf(delta, fwhm, 0.06)
    assert out.shape == (3, 75, 75) and out.dtype == np.float32
    for b in range(3):
        assert out[b].sum() == pytest.approx(1.0, abs=1e-5)
        assert _fwhm_from_moments(out[b].astype(float)) == pytest.approx(fwhm[b] / 0.06, rel=0.02)
    # extended source away from the edges, batched input: flux preserved
    gal = S.render_sersic_template(2.0, 4.0, 0.6, 0.3, 37.2, 36.7, 75)
    batch = np.broadcast_to(gal, (2, 3, 75, 75))
    conv = observe.convolve_psf(batch, fwhm, 0.06)
    assert conv.shape == (2, 3, 75, 75)
    assert conv.sum(axis=(2, 3)) == pytest.approx(np.full((2, 3), gal.sum()), rel=2e-3)
    # a wide PSF measured on a GalSim point-like source: variance adds (pixel already integrated)
    wide = observe.convolve_psf(delta, 1.4, 0.396)[1]
    assert _fwhm_from_moments(wide.astype(float)) == pytest.approx(1.4 / 0.396, rel=0.02)


def test_sersic_template_is_pixel_integrated_unit_flux():
    import galsim

    t = S.render_sersic_template(4.0, 3.0, 0.7, 0.4, 37.3, 36.8, 75)
    prof = galsim.Sersic(n=4.0, half_light_radius=3.0).shear(q=0.7, beta=0.4 * galsim.radians)
    exact = galsim.Convolve(prof.shift(0.3, -0.2), galsim.Pixel(1.0), real_space=True)
    ref = exact.drawImage(nx=15, ny=15, scale=1.0, method="no_pixel").array  # centred on pixel 37,37
    assert np.abs(t[30:45, 30:45] - ref).max() < 0.01 * ref.max()
    circ = galsim.Sersic(n=4.0, half_light_radius=3.0)
    assert t.sum() == pytest.approx(circ.calculateIntegratedFlux(37.0), abs=0.01)


def test_observe_sim2sim_target_is_source_plus_noise(sim2sim_set):
    source, target = S.observe_sim2sim(sim2sim_set, SMALL, seed=5)
    assert source.shape == target.shape == sim2sim_set.images.shape
    assert source.dtype == target.dtype == np.float32
    # source = PSF-convolved pristine
    ref = observe.convolve_psf(sim2sim_set.images[:2], SMALL.psf_fwhm_arcsec, SMALL.pixel_scale)
    assert np.array_equal(source[:2], ref)
    diff = (target - source).astype(float)
    sig = SMALL.sky_sigma()
    npix = diff[:, 0].size
    for b in range(3):
        assert abs(diff[:, b].mean()) < 4 * sig[b] / math.sqrt(npix)
        assert diff[:, b].std() == pytest.approx(sig[b], rel=0.02)


# --------------------------------------------------------------------------- physics
def test_mergers_are_more_asymmetric(physics_pair):
    _, s, _ = physics_pair
    a = np.array([_asymmetry(im[2]) for im in s.images])
    am, an = a[s.labels == 1].mean(), a[s.labels == 0].mean()
    assert am > an + 0.05, (am, an)
    # noise-robust structure: a second bright object near the centre is more common in mergers
    pairs = s.catalog["merger_type"] == 1
    assert pairs.sum() > 10 and np.nanmin(s.catalog["flux_ratio"][pairs]) >= 1.0
    assert np.nanmax(s.catalog["flux_ratio"][pairs]) <= 10.0


def test_tidal_features_are_below_the_noise_and_ablation_is_clean(physics_pair):
    p, s, s0 = physics_pair
    sig = p.sky_sigma()
    tidal = (s.images - s0.images).astype(float)
    # only the tidal sub-stream changed: non-mergers bit-identical
    assert np.array_equal(s.images[s.labels == 0], s0.images[s.labels == 0])
    has = s.catalog["has_tidal"]
    assert has.sum() >= 0.7 * (s.labels == 1).sum() and not has[s.labels == 0].any()
    peak = tidal.max(axis=(2, 3)) / sig  # per object and band, in units of target sigma
    assert (peak < 0.5 + 1e-4).all()  # below the noise in every band
    assert peak[has].max(axis=1).min() > 0.29  # the most significant band sits at 0.3-0.5 sigma
    assert np.allclose(peak[has].max(axis=1), s.catalog["tidal_peak_sigma"][has], rtol=1e-3)
    assert np.abs(tidal[~has]).max() == 0.0
    # the features are extended: many pixels carry them, with a few per cent of the light
    frac = tidal[has, 2].sum(axis=(1, 2)) / s.images[has, 2].sum(axis=(1, 2))
    assert 0.002 < np.median(frac) < 0.2
    # brightness as a surface brightness works too
    p_sb = S.Sim2SimParams(n_mergers=2, n_nonmergers=0, tidal_fraction=1.0, tidal_peak_sb_mag=26.0)
    a = S.render_sim2sim(p_sb, seed=1, progress=False)
    b = S.render_sim2sim(p_sb.replace(tidal_fraction=0.0), seed=1, progress=False)
    expect = observe.sb_mag_to_njy_per_pixel(26.0, 0.06)
    assert (a.images - b.images)[:, 2].max(axis=(1, 2)) == pytest.approx(np.full(2, expect), rel=1e-3)


# --------------------------------------------------------------------------- sim2real
def test_sim2real_source(real_source):
    s = real_source
    assert s.images.shape == (12, 3, 75, 75) and s.images.dtype == np.float32
    assert s.filters == ("g", "r", "i") and np.isfinite(s.images).all()
    assert (s.labels == 1).sum() == 6 and np.unique(s.object_id).size == 12
    assert np.median(s.catalog["snr"]) == pytest.approx(25.0, rel=0.3)
    # the noise in an empty corner matches the recorded sigma (within sampling error)
    corner = np.concatenate([s.images[:, :, :12, :12], s.images[:, :, -12:, -12:]], axis=2)
    ratio = corner.std(axis=(2, 3)) / s.catalog["sigma_njy"]
    assert 0.8 < np.median(ratio) < 1.3
    # dust reddens: g is fainter relative to r for dusty discs than the intrinsic disc colour allows
    assert np.nanmax(s.catalog["tau_v"]) > 0
    p = S.Sim2RealParams(source_n_objects=20, source_merger_fraction=44 / 5669)
    assert p.source_n_mergers == 0
    assert S.Sim2RealParams(source_n_objects=5669, source_merger_fraction=44 / 5669).source_n_mergers == 44


def test_sim2real_target_is_jpeg_rgb(real_target):
    t = real_target
    assert t.images.shape == (12, 3, 75, 75) and t.images.dtype == np.uint8
    assert t.filters == ("i", "r", "g") and t.pixel_scale == 0.396
    assert (t.labels == 1).sum() == 6 and np.unique(t.object_id).size == 12
    for im in t.images:
        assert im.max() > 100  # a galaxy is there
        assert np.percentile(im, 10) < 60  # dark sky
        assert len(np.unique(im)) > 30  # not blank / posterised
    # post-mergers are mostly double-cored
    assert t.catalog["double_core"][t.labels == 1].mean() >= 0.5
    # the observation chain: Lupton RGB then JPEG (lossy but close)
    from astropy.visualization import make_lupton_rgb

    rng = np.random.default_rng(0)
    yy, xx = np.indices((75, 75))
    blob = np.exp(-((xx - 37) ** 2 + (yy - 40) ** 2) / 60.0)
    img = np.stack([3.0 * blob, 2.0 * blob, 1.0 * blob]) + rng.normal(0, 0.01, (3, 75, 75))
    raw = make_lupton_rgb(img[0], img[1], img[2], minimum=0.0, stretch=0.5, Q=10.0).transpose(2, 0, 1)
    jpg = observe.lupton_rgb_jpeg(img, stretch=0.5, Q=10.0, minimum=0.0, quality=75)
    d = np.abs(jpg.astype(int) - raw.astype(int))
    assert jpg.dtype == np.uint8 and jpg.shape == (3, 75, 75)
    assert 0 < d.mean() < 4 and raw.max() > 150


def test_sim2real_target_determinism():
    p = S.Sim2RealParams(target_n_objects=4)
    a = S.render_sim2real_target(p, seed=9, progress=False)
    b = S.render_sim2real_target(p, seed=9, progress=False)
    assert np.array_equal(a.images, b.images)
