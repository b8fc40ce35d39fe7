"""Low-level renderers of the synthetic universe: pixel-integrated unit-flux templates of Sersic profiles
(GalSim) and of sums of circular Gaussians (exact, error functions), and their flux-weighted band sums."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf


@dataclass
class _Sersic:
    n: float
    hlr: float  # circularised half-light radius, pixels
    q: float
    beta: float  # position angle, radians
    x: float  # 0-based pixel coordinates of the centre
    y: float


@dataclass
class _Blobs:
    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray  # pixels
    w: np.ndarray  # relative weights


def _galsim_subdraw(prof, x, y, x0, x1, y0, y1, s):
    """Flux per pixel of ``prof`` (centred at x, y) over pixels [x0,x1)x[y0,y1), s x s sub-sampled."""
    import galsim

    mx, my = x1 - x0, y1 - y0
    img = galsim.ImageD(mx * s, my * s, scale=1.0 / s)
    pcx, pcy = 0.5 * (x0 + x1 - 1), 0.5 * (y0 + y1 - 1)
    prof.shift(x - pcx, y - pcy).drawImage(image=img, method="no_pixel")
    return img.array.reshape(my, s, mx, s).sum(axis=(1, 3))


def render_sersic_template(n: float, hlr_pix: float, q: float, beta: float, x: float, y: float,
                           size: int) -> np.ndarray:
    """Unit-flux Sersic profile integrated over the pixels of a ``size`` x ``size`` stamp (float64).

    (x, y): centre in 0-based pixel coordinates (pixel i covers [i-0.5, i+0.5]); hlr_pix: circularised
    half-light radius in pixels; q: axis ratio; beta: position angle (rad, from +x towards +y).
    """
    import galsim

    prof = galsim.Sersic(n=float(n), half_light_radius=float(hlr_pix), flux=1.0)
    if q < 0.999:
        prof = prof.shear(q=float(q), beta=float(beta) * galsim.radians)
    out = _galsim_subdraw(prof, x, y, 0, size, 0, size, 2)
    ix, iy = int(round(x)), int(round(y))
    refinements = [(4, 6)] + ([(1, 32)] if n >= 1.5 else [])
    for h, s in refinements:
        x0, x1 = max(ix - h, 0), min(ix + h + 1, size)
        y0, y1 = max(iy - h, 0), min(iy + h + 1, size)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = _galsim_subdraw(prof, x, y, x0, x1, y0, y1, s)
    return out


def _erf_profile(centres: np.ndarray, sigma: np.ndarray, size: int) -> np.ndarray:
    edges = np.arange(size + 1, dtype=float) - 0.5
    cdf = 0.5 * erf((edges[None, :] - centres[:, None]) / (math.sqrt(2.0) * sigma[:, None]))
    return np.diff(cdf, axis=1)


def render_gaussian_blobs(x, y, sigma, w, size: int) -> np.ndarray:
    """Sum of circular Gaussians (weights ``w``, widths ``sigma`` in pixels) integrated exactly over
    the pixels of a ``size`` x ``size`` stamp.  The result has total flux sum(w) (minus off-stamp light)."""
    x, y, sigma, w = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (x, y, sigma, w))
    if x.size == 0:
        return np.zeros((size, size))
    gx = _erf_profile(x, sigma, size)
    gy = _erf_profile(y, sigma, size)
    return np.einsum("m,my,mx->yx", w, gy, gx)


def _template(spec, size: int) -> np.ndarray:
    if isinstance(spec, _Sersic):
        return render_sersic_template(spec.n, spec.hlr, spec.q, spec.beta, spec.x, spec.y, size)
    return render_gaussian_blobs(spec.x, spec.y, spec.sigma, spec.w, size)


def _render(comps, size: int) -> np.ndarray:
    """comps: iterable of (spec, reference-band flux, sed(3)) -> (3, size, size) float64."""
    img = np.zeros((3, size, size))
    for spec, flux, sed in comps:
        if flux == 0:
            continue
        img += (flux * np.asarray(sed))[:, None, None] * _template(spec, size)[None]
    return img


def _concat_blobs(blobs: list[_Blobs]) -> _Blobs:
    if not blobs:
        return _Blobs(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    return _Blobs(*(np.concatenate([getattr(b, a) for b in blobs]) for a in ("x", "y", "sigma", "w")))


def _normalised_template(blobs: _Blobs, size: int) -> np.ndarray:
    """Template with peak pixel 1 (zeros if empty)."""
    t = render_gaussian_blobs(blobs.x, blobs.y, blobs.sigma, blobs.w, size)
    peak = t.max() if t.size else 0.0
    return t / peak if peak > 0 else np.zeros((size, size))


def _peak_amplitude(level_sigma: float, sed: np.ndarray, sigma_b: np.ndarray) -> float:
    """Reference-band amplitude such that max_b(A * sed_b / sigma_b) = level_sigma."""
    return float(level_sigma / np.max(np.asarray(sed) / np.asarray(sigma_b)))
