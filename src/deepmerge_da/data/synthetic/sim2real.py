"""Recipes of sim2real objects: the source (z ~ 0 Illustris/SDSS-like mocks in (g, r, i) with dust, PSF and
noise, floats; or, with ``source_rendering: skyserver``, the same kind of galaxies observed as the target is) and
the target (different objects observed like SDSS, Lupton asinh RGB, JPEG-compressed, uint8)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from deepmerge_da.data import observe
from deepmerge_da.data.observe import NJY_PER_NANOMAGGY, mag_to_njy
from deepmerge_da.data.synthetic.cosmology import _interp_cosmo
from deepmerge_da.data.synthetic.morphology import (
    _MORPHS,
    _galaxy,
    _loguniform,
    _neighbours,
    _plume,
    _quant_n,
    _sed,
    _shells,
    _Style,
    _tail,
)
from deepmerge_da.data.synthetic.parameters import Sim2RealParams
from deepmerge_da.data.synthetic.random_streams import _STREAM_SIM2REAL_SOURCE, _STREAM_SIM2REAL_TARGET, _object_rngs
from deepmerge_da.data.synthetic.rendering import (
    _Blobs,
    _concat_blobs,
    _normalised_template,
    _peak_amplitude,
    _render,
    _Sersic,
    render_gaussian_blobs,
    render_sersic_template,
)


def _sim2real_style(P: Sim2RealParams, order: tuple[int, int, int], kpx: float) -> _Style:
    """order: indices into (g, r, i) giving the output band order."""
    def o(t):
        return tuple(t[k] for k in order)

    return _Style(
        ref=order.index(1),
        colours={"bulge": o(P.colour_bulge_gri), "disc": o(P.colour_disc_gri), "clump": o(P.colour_arm_gri),
                 "arm": o(P.colour_arm_gri), "tidal": o(P.colour_tidal_gri)},
        colour_scatter=P.colour_scatter_mag,
        bulge_n=P.bulge_sersic_n,
        bulge_re_fraction=P.bulge_re_fraction_range,
        q0=P.disc_min_axis_ratio,
        clump_flux_fraction=(0.02, 0.08),
        n_clumps=(3, 10),
        clump_sigma_px=(0.3 / kpx, 0.6 / kpx),
        arm_flux_fraction=P.arm_flux_fraction_range,
        arm_width_px=(0.4 / kpx, 0.8 / kpx),
    )


def _dusty_galaxy(rng, style, P: Sim2RealParams, order, size, **kw):
    """Render one galaxy with a dust screen that follows its disc light: T_b = exp(-tau_b * D/Dmax),
    tau_b = tau_V (A_b/A_V) / q_disc (face-on tau_V drawn per galaxy, inclination raises it)."""
    comps, disc, q_disc = _galaxy(rng, style, **kw)
    tau_v = rng.uniform(*P.dust_tau_v_range)
    img = _render(comps, size)
    bt_like = comps[0][1] / max(kw["flux"], 1e-30)
    if bt_like < 0.8:  # spheroids carry little dust
        d = render_sersic_template(disc.n, disc.hlr, disc.q, disc.beta, disc.x, disc.y, size)
        d = d / d.max() if d.max() > 0 else d
        ratio = np.array([P.dust_band_ratio_gri[k] for k in order])
        tau = tau_v * ratio / max(q_disc, 0.2)
        img *= np.exp(-tau[:, None, None] * d[None])
    else:
        tau_v = 0.0
    return img, comps, tau_v


def _post_merger_tidal(rng, cx, cy, re, kpx, P: Sim2RealParams) -> list[_Blobs]:
    """Tails, shells and plumes of a remnant (rng: its tidal stream)."""
    tw = rng.uniform(*P.tail_width_kpc) / kpx
    out = []
    make_sh = rng.random() < P.shell_fraction
    sh = _shells(rng, cx, cy, re, tw * 0.7)
    if make_sh:
        out += sh
    sense = 1.0 if rng.random() < 0.5 else -1.0
    a0 = rng.uniform(0, 2 * math.pi)
    for k in range(int(rng.integers(1, 3))):
        out.append(_tail(rng, cx, cy, re, a0 + k * math.pi + rng.normal(0, 0.4), sense,
                         rng.uniform(*P.tail_length_kpc) / kpx, tw))
    if rng.random() < 0.6:
        out.append(_plume(rng, cx, cy, re))
    return out


_SIM2REAL_SOURCE_CATALOG = {
    "merger_type": (np.int8, 0),
    "morphology": (np.int8, -1),
    "mag_ref": (np.float32, np.nan),
    "re_kpc": (np.float32, np.nan),
    "double_nucleus": (np.bool_, False),
    "tau_v": (np.float32, np.nan),
    "snr": (np.float32, np.nan),
    "sigma_njy": (np.float32, np.nan),  # (N, 3)
    "tidal_peak_sigma": (np.float32, np.nan),
    "n_neighbours": (np.int8, 0),
    "redshift": (np.float32, np.nan),  # source_rendering: skyserver only
    "seeing_fwhm_arcsec": (np.float32, np.nan),  # r band; skyserver only
    "n_stars": (np.int8, 0),
}

_GRI_SOURCE_ORDER = (0, 1, 2)  # (g, r, i)
_GRI_TARGET_ORDER = (2, 1, 0)  # (i, r, g)


def _sim2real_source_object(P: Sim2RealParams, seed: int, index: int, label: int):
    r_main, r_tidal, r_nb, r_noise, r_view = _object_rngs(seed, _STREAM_SIM2REAL_SOURCE, index)
    skyserver = P.source_rendering == "skyserver"
    if skyserver:  # the galaxies are drawn as for the mocks (r_main), the view from r_view
        z = r_view.uniform(*P.source_redshift_range)
        N = P.source_cutout_pixels
        kpx = P.target_pixel_scale * _interp_cosmo(z, (min(P.source_redshift_range[0], 0.005),
                                                        max(P.source_redshift_range[1], 0.2)))[0]
        order = _GRI_TARGET_ORDER  # rendered as the target (i, r, g), returned in the source order (g, r, i)
    else:
        N = P.image_size
        kpx = P.source_pixel_scale_kpc
        order = _GRI_SOURCE_ORDER
    style = _sim2real_style(P, order, kpx)
    c0 = (N - 1) / 2.0
    cx, cy = c0 + r_main.normal(0, 1.0), c0 + r_main.normal(0, 1.0)
    mag = r_main.uniform(*P.source_mag_r_range)
    fsys = float(mag_to_njy(mag))
    re = _loguniform(r_main, *P.source_re_kpc) / kpx
    morphs = ("spiral", "disc_bulge", "spheroid")
    info = {"mag_ref": mag, "re_kpc": re * kpx}
    snr = P.source_snr * 10 ** (P.source_snr_scatter_dex * r_noise.standard_normal())
    level = r_tidal.uniform(*P.source_tidal_peak_sigma)
    if label == 1:
        m = ("disc_bulge", "spheroid", "spiral")[r_main.choice(3, p=(0.5, 0.35, 0.15))]
        off_r = r_main.uniform(*P.remnant_offset_re) * re
        off_a = r_main.uniform(0, 2 * math.pi)
        dn = r_main.random() < P.source_double_nucleus_fraction
        fdn = r_main.uniform(*P.source_double_nucleus_flux_fraction)
        dno = r_main.uniform(*P.source_double_nucleus_offset_kpc) / kpx
        dna = r_main.uniform(0, 2 * math.pi)
        dn_hlr = r_main.uniform(0.3, 0.8) / kpx
        fmain = fsys * (1 - fdn) if dn else fsys
        img, comps, tau_v = _dusty_galaxy(r_main, style, P, order, N, x=cx, y=cy, flux=fmain, re=re, morph=m,
                                          disc_offset=(off_r * math.cos(off_a), off_r * math.sin(off_a)))
        if dn:
            nuc = _Sersic(2.0, dn_hlr, r_main.uniform(0.6, 1.0), r_main.uniform(0, math.pi),
                          cx + dno * math.cos(dna), cy + dno * math.sin(dna))
            img += _render([(nuc, fsys * fdn, comps[0][2])], N)
        tails = _post_merger_tidal(r_tidal, cx, cy, re, kpx, P)
        info.update(merger_type=2, morphology=_MORPHS.index(m), double_nucleus=bool(dn))
    else:
        m = morphs[r_main.choice(3, p=P.source_morphology_probs)]
        img, comps, tau_v = _dusty_galaxy(r_main, style, P, order, N, x=cx, y=cy, flux=fsys, re=re, morph=m)
        tails = []
        info.update(merger_type=0, morphology=_MORPHS.index(m))
    info["tau_v"] = tau_v
    nb, nnb = _neighbours(r_nb, style, N, fsys, (1.0, 4.0), (0.5 / kpx, 2.0 / kpx), P.source_neighbour_prob, (c0, c0))
    info["n_neighbours"] = nnb
    if skyserver:
        info["redshift"] = z
        return _skyserver_source(P, img, nb, tails, level, style, r_view, r_noise, info)
    fwhm_pix = P.source_psf_fwhm_kpc / kpx
    body = observe.convolve_psf(img, fwhm_pix, 1.0).astype(np.float64)
    # S/N: mean per-pixel signal of the galaxy body within snr_aperture_re * Re, over sigma
    yy, xx = np.mgrid[0:N, 0:N]
    ap = (xx - cx) ** 2 + (yy - cy) ** 2 <= (P.snr_aperture_re * re) ** 2
    mean_sig = body[:, ap].mean(axis=1)
    sigma = np.maximum(mean_sig, 1e-30) / snr
    extra = _render(nb, N)
    if tails:
        sed_t = _sed(style, "tidal", np.zeros(3))
        amp = _peak_amplitude(level, sed_t, sigma)
        extra += (amp * sed_t)[:, None, None] * _normalised_template(_concat_blobs(tails), N)[None]
        info["tidal_peak_sigma"] = level
    if extra.any():
        body += observe.convolve_psf(extra, fwhm_pix, 1.0)
    out = observe.add_sky_noise(body, sigma, r_noise)
    info.update(snr=snr, sigma_njy=sigma)
    return out.astype(np.float32), info


def _skyserver_source(P: Sim2RealParams, img, nb, tails, level, style, r_view, r_noise, info):
    """A source object (i, r, g nJy/pixel before the PSF, its neighbours and tails) observed as SkyServer cutouts
    are: seeing, field stars and sky noise as the target (:func:`_observe_sdss`), Lupton asinh 8-bit RGB and JPEG,
    a Lanczos resize to image_size; returned as float32 8-bit counts in (g, r, i) order."""
    N = img.shape[-1]
    seeing = np.asarray(P.source_seeing_fwhm_arcsec[::-1]) * 10 ** (P.source_seeing_scatter_dex
                                                                  * r_view.standard_normal())
    sigma = np.asarray(observe.point_source_depth_sigma(P.source_depth_mag[::-1], seeing, P.target_pixel_scale))
    img = img + _render(nb, N)
    if tails:
        sed_t = _sed(style, "tidal", np.zeros(3))
        amp = _peak_amplitude(level, sed_t, sigma)
        img += (amp * sed_t)[:, None, None] * _normalised_template(_concat_blobs(tails), N)[None]
        info["tidal_peak_sigma"] = level
    obs, info["n_stars"] = _observe_sdss(img, seeing, P.target_pixel_scale, sigma, P.source_star_mean,
                                         P.target_star_mag_range, r_view, r_noise)
    rgb = observe.lupton_rgb_jpeg(obs / NJY_PER_NANOMAGGY, stretch=P.source_lupton_stretch, Q=P.source_lupton_q,
                                  minimum=P.lupton_minimum, quality=P.jpeg_quality,
                                  band_scales=P.source_lupton_band_scales)
    size = P.image_size
    if size != N:
        rgb = np.asarray(Image.fromarray(rgb.transpose(1, 2, 0)).resize((size, size), Image.Resampling.LANCZOS))
        rgb = rgb.transpose(2, 0, 1)
    info.update(seeing_fwhm_arcsec=seeing[1], sigma_njy=sigma[::-1])
    return rgb[::-1].astype(np.float32), info


_SIM2REAL_TARGET_CATALOG = {
    "merger_type": (np.int8, 0),
    "morphology": (np.int8, -1),
    "redshift": (np.float32, np.nan),
    "mag_ref": (np.float32, np.nan),
    "re_kpc": (np.float32, np.nan),
    "double_core": (np.bool_, False),
    "separation_kpc": (np.float32, np.nan),
    "tidal_peak_sigma": (np.float32, np.nan),
    "n_neighbours": (np.int8, 0),
    "n_stars": (np.int8, 0),
}


def _sample_star_mag(rng, lo, hi):
    # dN/dm ~ 10^(0.2 m): inverse-CDF sampling
    a = 0.2 * math.log(10.0)
    u = rng.random()
    return float(math.log(math.exp(a * lo) + u * (math.exp(a * hi) - math.exp(a * lo))) / a)


def _sim2real_target_float(P: Sim2RealParams, seed: int, index: int, label: int):
    """SDSS-like observed object before the RGB/JPEG step: (i, r, g) nJy/pixel with noise."""
    r_main, r_tidal, r_nb, r_noise, r_star = _object_rngs(seed, _STREAM_SIM2REAL_TARGET, index)
    N = P.image_size
    order = _GRI_TARGET_ORDER
    ps = P.target_pixel_scale
    zlo, zhi = P.target_redshift_range
    z = r_main.uniform(zlo, zhi)
    kpa, dm = _interp_cosmo(z, (min(zlo, 0.005), max(zhi, 0.2)))
    kpx = ps * kpa
    style = _sim2real_style(P, order, kpx)
    c0 = (N - 1) / 2.0
    cx, cy = c0 + r_main.normal(0, 1.0), c0 + r_main.normal(0, 1.0)
    lo, hi = P.target_abs_mag_r_range
    absmag = r_main.uniform(lo, max(lo, min(hi, P.target_mag_r_limit - dm)))
    mag = absmag + dm
    fsys = float(mag_to_njy(mag))
    re = min(_loguniform(r_main, *P.target_re_kpc) / kpx, P.target_max_re_frac * N)
    info = {"redshift": z, "mag_ref": mag, "re_kpc": re * kpx}
    sigma = np.asarray(observe.point_source_depth_sigma(P.target_depth_mag, P.target_psf_fwhm_arcsec, ps))
    level = r_tidal.uniform(*P.target_tidal_peak_sigma)
    tails = []
    if label == 1:
        two = r_main.random() < P.target_double_core_fraction
        m = ("disc_bulge", "spheroid")[int(r_main.random() < 0.5)]
        off_r = r_main.uniform(*P.remnant_offset_re) * re
        off_a = r_main.uniform(0, 2 * math.pi)
        if two:
            ratio = _loguniform(r_main, *P.target_core_flux_ratio)
            sep = r_main.uniform(*P.target_core_separation_kpc) / kpx
            ang = r_main.uniform(0, 2 * math.pi)
            fcore = r_main.uniform(0.35, 0.6) * fsys  # light in the two cores
            f1, f2 = fcore * ratio / (1 + ratio), fcore / (1 + ratio)
            u = np.array([math.cos(ang), math.sin(ang)])
            p1 = np.array([cx, cy]) - sep * (f2 / fcore) * u
            p2 = np.array([cx, cy]) + sep * (f1 / fcore) * u
            img, comps, tau_v = _dusty_galaxy(r_main, style, P, order, N, x=cx + off_r * math.cos(off_a),
                                              y=cy + off_r * math.sin(off_a), flux=fsys - fcore, re=re * 1.2,
                                              morph="disc_bulge")
            sed_b = comps[0][2]
            for p, f in ((p1, f1), (p2, f2)):
                core = _Sersic(_quant_n(r_main.choice((2.0, 3.0, 4.0))), r_main.uniform(0.5, 1.5) / kpx,
                               r_main.uniform(0.6, 1.0), r_main.uniform(0, math.pi), p[0], p[1])
                img += _render([(core, f, sed_b)], N)
            info.update(double_core=True, separation_kpc=sep * kpx)
        else:
            img, comps, tau_v = _dusty_galaxy(r_main, style, P, order, N, x=cx, y=cy, flux=fsys, re=re, morph=m,
                                              disc_offset=(off_r * math.cos(off_a), off_r * math.sin(off_a)))
        tails = _post_merger_tidal(r_tidal, cx, cy, re, kpx, P)
        info.update(merger_type=2, morphology=_MORPHS.index(m))
    else:
        m = ("spiral", "disc_bulge", "spheroid")[r_main.choice(3, p=(0.45, 0.25, 0.30))]
        img, comps, tau_v = _dusty_galaxy(r_main, style, P, order, N, x=cx, y=cy, flux=fsys, re=re, morph=m)
        info.update(merger_type=0, morphology=_MORPHS.index(m))
    nb, nnb = _neighbours(r_nb, style, N, fsys, (0.5, 3.0), (1.0 / kpx, 4.0 / kpx), P.target_neighbour_prob, (c0, c0))
    img += _render(nb, N)
    if tails:
        sed_t = _sed(style, "tidal", np.zeros(3))
        amp = _peak_amplitude(level, sed_t, sigma)
        img += (amp * sed_t)[:, None, None] * _normalised_template(_concat_blobs(tails), N)[None]
        info["tidal_peak_sigma"] = level
    info["n_neighbours"] = nnb
    out, info["n_stars"] = _observe_sdss(img, P.target_psf_fwhm_arcsec, ps, sigma, P.target_star_mean,
                                         P.target_star_mag_range, r_star, r_noise)
    return out, info


def _observe_sdss(img, psf_fwhm_arcsec, ps, sigma, star_mean, star_mag_range, r_star, r_noise):
    """(i, r, g) nJy/pixel before the PSF -> (observed image with field stars and sky noise, number of stars)."""
    N = img.shape[-1]
    obs = observe.convolve_psf(img, psf_fwhm_arcsec, ps).astype(np.float64)
    # field stars, drawn directly as pixel-integrated Gaussian PSFs (sub-pixel positions)
    nst = int(r_star.poisson(star_mean))
    for _ in range(nst):
        sx, sy = r_star.uniform(-0.5, N - 0.5, 2)
        smag = _sample_star_mag(r_star, *star_mag_range)
        gr = r_star.uniform(0.3, 1.4)
        ri = 0.1 + 0.45 * (gr - 0.3) + r_star.normal(0, 0.05)
        colours = {0: -ri, 1: 0.0, 2: gr}  # (i, r, g) relative to r
        for b in range(3):
            sig_psf = psf_fwhm_arcsec[b] / ps / observe.FWHM_PER_SIGMA
            obs[b] += float(mag_to_njy(smag + colours[b])) * render_gaussian_blobs(sx, sy, sig_psf, 1.0, N)
    return observe.add_sky_noise(obs, sigma, r_noise), nst


def _sim2real_target_object(P: Sim2RealParams, seed: int, index: int, label: int):
    img, info = _sim2real_target_float(P, seed, index, label)
    rgb = observe.lupton_rgb_jpeg(img / NJY_PER_NANOMAGGY, stretch=P.lupton_stretch, Q=P.lupton_q,
                                  minimum=P.lupton_minimum, quality=P.jpeg_quality, band_scales=P.lupton_band_scales)
    return rgb, info
