"""Galaxy building blocks of the synthetic universe: galaxies (bulge, disc, clumps, spiral arms), tidal
features (tails, bridges, shells, plumes) and unrelated neighbours, as (template spec, flux, SED) components."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deepmerge_da.data.synthetic.rendering import _Blobs, _Sersic

# catalog codes: the catalogs' ``morphology`` and ``merger_type`` are indices into these
_MORPHS = ("clumpy_disc", "disc_bulge", "spheroid", "spiral")
_MERGER_TYPES = ("none", "future_pair", "past_remnant")


def _loguniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _quant_n(n: float) -> float:
    return max(0.5, round(float(n) * 2.0) / 2.0)


def _shear_matrix(q: float, beta: float) -> np.ndarray:
    """The area-preserving matrix GalSim's ``.shear(q=q, beta=beta)`` applies to positions."""
    c, s = math.cos(beta), math.sin(beta)
    rot = np.array([[c, -s], [s, c]])
    a = np.diag([1.0 / math.sqrt(q), math.sqrt(q)])
    return rot @ a @ rot.T


@dataclass(frozen=True)
class _Style:
    ref: int
    colours: dict  # name -> (3,) mag offsets relative to the reference band
    colour_scatter: float
    bulge_n: tuple
    bulge_re_fraction: tuple
    q0: float
    clump_flux_fraction: tuple = (0.1, 0.4)
    n_clumps: tuple = (3, 15)
    clump_sigma_px: tuple = (0.4, 1.2)
    arm_flux_fraction: tuple = (0.05, 0.25)
    arm_width_px: tuple = (0.8, 1.6)


def _sed(style: _Style, name: str, delta: np.ndarray) -> np.ndarray:
    col = np.asarray(style.colours[name], dtype=float) + delta
    col = col - col[style.ref]
    return 10.0 ** (-0.4 * col)


def _disc_axis_ratio(rng, q0):
    cosi = rng.uniform(0.0, 1.0)
    return math.sqrt(cosi**2 * (1 - q0**2) + q0**2)


def _galaxy(rng, style: _Style, *, x, y, flux, re, morph, disc_offset=(0.0, 0.0), colour_scatter_mult=1.0):
    """Components (spec, flux, sed) of one galaxy and its disc spec (for dust); ``re`` in pixels.

    morph: 'clumpy_disc' | 'disc_bulge' | 'spheroid' | 'spiral'.  disc_offset (pixels) shifts the
    disc/envelope relative to the bulge (lopsided remnants).
    """
    import galsim

    delta = rng.normal(0.0, style.colour_scatter * colour_scatter_mult, 3)
    delta[style.ref] = 0.0
    beta = rng.uniform(0.0, math.pi)
    q_disc = _disc_axis_ratio(rng, style.q0)
    q_bulge = rng.uniform(0.6, 1.0)
    n_b = _quant_n(rng.choice(style.bulge_n))
    if morph == "clumpy_disc":
        bt = rng.uniform(0.0, 0.2)
        fclump = rng.uniform(*style.clump_flux_fraction)
        farm = 0.0
    elif morph == "disc_bulge":
        bt = rng.uniform(0.2, 0.6)
        fclump = 0.3 * rng.uniform(*style.clump_flux_fraction)
        farm = 0.0
    elif morph == "spheroid":
        bt = rng.uniform(0.85, 1.0)
        n_b = _quant_n(rng.choice([n for n in style.bulge_n if n >= 3] or style.bulge_n))
        fclump, farm = 0.0, 0.0
    elif morph == "spiral":
        bt = rng.uniform(0.05, 0.5)
        fclump = 0.0
        farm = rng.uniform(*style.arm_flux_fraction)
    else:  # pragma: no cover - internal
        raise ValueError(morph)
    re_b = re if morph == "spheroid" else max(0.3, re * rng.uniform(*style.bulge_re_fraction))
    xd, yd = x + disc_offset[0], y + disc_offset[1]
    comps = []
    bulge = _Sersic(n_b, re_b, q_bulge, beta + rng.normal(0, 0.3), x, y)
    comps.append((bulge, flux * bt, _sed(style, "bulge", delta)))
    disc = _Sersic(1.0, re, q_disc, beta, xd, yd)
    fdisc = flux * (1 - bt)
    comps.append((disc, fdisc * (1 - fclump - farm), _sed(style, "disc", delta)))
    mat = _shear_matrix(q_disc, beta)
    # clumps: galsim.RandomKnots positions (exponential of the disc's half-light radius), sheared
    nk = int(rng.integers(style.n_clumps[0], style.n_clumps[1] + 1))
    kseed = int(rng.integers(1, 2**31 - 1))
    if fclump > 0 and nk > 0:
        pts = galsim.RandomKnots(nk, half_light_radius=re, flux=1.0, rng=galsim.BaseDeviate(kseed)).points
        pts = pts @ mat.T
        kw = rng.lognormal(0.0, 0.6, nk)
        ks = rng.uniform(*style.clump_sigma_px, nk)
        comps.append((_Blobs(xd + pts[:, 0], yd + pts[:, 1], ks, kw / kw.sum()), fdisc * fclump,
                      _sed(style, "clump", delta)))
    # spiral arms: 2 logarithmic arms of blobs, brightness following the exponential disc
    pitch = math.radians(rng.uniform(12.0, 25.0))
    phase = rng.uniform(0, 2 * math.pi)
    aw = rng.uniform(*style.arm_width_px)
    if farm > 0:
        rd = re / 1.678
        r0, r1 = 0.35 * re, 2.2 * re
        phis = np.linspace(0.0, math.log(r1 / r0) / math.tan(pitch), 200)
        rr = r0 * np.exp(phis * math.tan(pitch))
        xs, ys, ws = [], [], []
        for k in range(2):
            ph = phis + phase + k * math.pi
            xs.append(rr * np.cos(ph))
            ys.append(rr * np.sin(ph))
            ws.append(np.exp(-rr / rd) * rr * (1 + 0.5 * rng.standard_normal(rr.size)).clip(0.2))
        xy = np.stack([np.concatenate(xs), np.concatenate(ys)], axis=1) @ mat.T
        w = np.concatenate(ws)
        sig = np.full(w.size, max(aw, 0.02 * re + aw))
        comps.append((_Blobs(xd + xy[:, 0], yd + xy[:, 1], sig, w / w.sum()), fdisc * farm, _sed(style, "arm", delta)))
    return comps, disc, q_disc


def _ribbon(points: np.ndarray, widths: np.ndarray, bright: np.ndarray) -> _Blobs:
    """Resample a poly-line (K,2) with per-vertex Gaussian widths and brightness into blobs spaced
    at <= 0.4 x the local width, so that their sum is a smooth ribbon of ~uniform surface brightness
    per unit ``bright``."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    length = s[-1]
    m = max(4, int(math.ceil(length / (0.4 * max(widths.min(), 0.3)))) + 1)
    sg = np.linspace(0.0, length, m)
    x = np.interp(sg, s, points[:, 0])
    y = np.interp(sg, s, points[:, 1])
    w = np.interp(sg, s, widths)
    b = np.interp(sg, s, bright)
    ds = length / max(m - 1, 1)
    # a line of Gaussians of width w and weight b*ds has peak ~ b / (sqrt(2 pi) w): weight by w
    return _Blobs(x, y, w, b * ds * w)




def _tail(rng, cx, cy, re, direction, sense, length, width) -> _Blobs:
    """A curved tidal tail leaving a galaxy (centre cx, cy; radius re) along ``direction`` (rad)."""
    t = np.linspace(0.0, 1.0, 40)
    curv = sense * rng.uniform(0.6, 1.6)
    r = 0.7 * re + length * t
    phi = direction + curv * t
    pts = np.stack([cx + r * np.cos(phi), cy + r * np.sin(phi)], axis=1)
    fade = rng.uniform(0.35, 1.0)
    bright = np.exp(-t / fade) * np.clip(t / 0.08, 0.3, 1.0)
    widths = width * (1.0 + rng.uniform(0.3, 1.2) * t)
    return _ribbon(pts, widths, bright)


def _bridge(rng, p1, p2, width) -> _Blobs:
    p1, p2 = np.asarray(p1, float), np.asarray(p2, float)
    d = p2 - p1
    perp = np.array([-d[1], d[0]])
    ctrl = 0.5 * (p1 + p2) + rng.uniform(-0.35, 0.35) * perp
    t = np.linspace(0.0, 1.0, 30)[:, None]
    pts = (1 - t) ** 2 * p1 + 2 * (1 - t) * t * ctrl + t**2 * p2
    bright = 0.6 + 0.4 * np.sin(np.pi * t[:, 0])
    return _ribbon(pts, np.full(len(t), width), bright)


def _shells(rng, cx, cy, re, width) -> list[_Blobs]:
    out = []
    axis = rng.uniform(0.0, 2 * math.pi)
    nsh = int(rng.integers(2, 5))
    radii = np.sort(rng.uniform(1.5, 4.0, nsh)) * re
    for k, rad in enumerate(radii):
        centre_ang = axis + (math.pi if k % 2 else 0.0) + rng.normal(0, 0.2)
        span = math.radians(rng.uniform(60.0, 150.0))
        a = np.linspace(-span / 2, span / 2, 40)
        pts = np.stack([cx + rad * np.cos(centre_ang + a), cy + rad * np.sin(centre_ang + a)], axis=1)
        bright = np.clip(np.cos(np.pi * a / span), 0.0, None) ** 0.5 * rng.uniform(0.6, 1.0)
        out.append(_ribbon(pts, np.full(a.size, width * rng.uniform(0.6, 1.0)), bright))
    return out


def _plume(rng, cx, cy, re) -> _Blobs:
    ang = rng.uniform(0.0, 2 * math.pi)
    k = int(rng.integers(3, 7))
    d = np.linspace(0.8, rng.uniform(1.8, 3.0), k) * re
    jit = rng.normal(0.0, 0.15 * re, (2, k))
    x = cx + d * math.cos(ang) + jit[0]
    y = cy + d * math.sin(ang) + jit[1]
    sig = rng.uniform(0.5, 1.0, k) * re
    w = np.exp(-np.linspace(0, 1, k)) * sig**2
    return _Blobs(x, y, sig, w)




def _neighbours(rng, style, size, flux_sys, mag_offset, re_range_px, prob, centre):
    """Faint unrelated galaxies placed away from the centre (rng: its own stream)."""
    comps = []
    u = rng.random()
    n = 0 if u >= prob else (1 if rng.random() < 0.7 else 2)
    for _ in range(n):
        rad = rng.uniform(0.35, 0.95) * size / 2
        ang = rng.uniform(0, 2 * math.pi)
        x, y = centre[0] + rad * math.cos(ang), centre[1] + rad * math.sin(ang)
        f = flux_sys * 10 ** (-0.4 * rng.uniform(*mag_offset))
        re = _loguniform(rng, *re_range_px)
        morph = "disc_bulge" if rng.random() < 0.6 else "spheroid"
        c, _, _ = _galaxy(rng, style, x=x, y=y, flux=f, re=re, morph=morph, colour_scatter_mult=3.0)
        comps.extend(c)
    return comps, n

