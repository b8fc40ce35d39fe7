"""Reusable observation steps: PSF convolution, sky noise, SDSS-like 8-bit asinh RGB + JPEG.

Conventions
-----------
* Images are surface-brightness maps in **flux per pixel** (the synthetic universe uses nJy/pixel,
  AB magnitude zero point 3631 Jy = 3631e9 nJy).  Band stacks are ``(3, H, W)`` or ``(N, 3, H, W)``;
  per-band quantities (PSF FWHM, noise sigma) are sequences of length 3 in the same band order.
* "Pristine" inputs are already integrated over the detector pixel (GalSim does that), so the PSF
  kernel is a *point-sampled* (``mode='center'``), normalised Gaussian: the observed image is then
  (profile * pixel * PSF) sampled at pixel centres, and a delta-like pristine source ends up with the
  requested FWHM (its second moment is exactly the Gaussian's).
* PSF convolution uses :func:`astropy.convolution.convolve` with ``boundary='fill', fill_value=0``:
  the sky outside the stamp is treated as empty, which is right for pristine stamps whose light
  beyond the edge is negligible; flux of sources within ~2 FWHM of an edge is partly lost (not
  wrapped around as a plain FFT would do).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "AB_ZEROPOINT_NJY",
    "NJY_PER_NANOMAGGY",
    "FWHM_PER_SIGMA",
    "mag_to_njy",
    "njy_to_mag",
    "sb_mag_to_njy_per_pixel",
    "gaussian_psf_kernel",
    "convolve_psf",
    "sky_noise_sigma",
    "limiting_sb_from_sigma",
    "point_source_depth_sigma",
    "add_sky_noise",
    "lupton_rgb_jpeg",
    "jpeg_roundtrip",
]

#: AB magnitude zero point in nJy (m_AB = 0  <=>  3631 Jy).
AB_ZEROPOINT_NJY = 3631e9
#: One SDSS nanomaggy (m_AB = 22.5) in nJy.
NJY_PER_NANOMAGGY = 3631.0
#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def mag_to_njy(mag):
    """AB magnitude -> flux density in nJy."""
    return AB_ZEROPOINT_NJY * 10.0 ** (-0.4 * np.asarray(mag, dtype=float))


def njy_to_mag(flux_njy):
    """Flux density in nJy -> AB magnitude."""
    return -2.5 * np.log10(np.asarray(flux_njy, dtype=float) / AB_ZEROPOINT_NJY)


def sb_mag_to_njy_per_pixel(sb_mag_arcsec2, pixel_scale):
    """Surface brightness (AB mag/arcsec^2) -> nJy per pixel of side ``pixel_scale`` arcsec."""
    return AB_ZEROPOINT_NJY * 10.0 ** (-0.4 * np.asarray(sb_mag_arcsec2, dtype=float)) * pixel_scale**2


def _per_band(value, nbands: int) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.size == 1:
        arr = np.repeat(arr, nbands)
    if arr.size != nbands:
        raise ValueError(f"expected 1 or {nbands} per-band values, got {arr.size}")
    return arr


def gaussian_psf_kernel(fwhm_pix: float, size: int | None = None):
    """Normalised, point-sampled circular Gaussian PSF kernel (astropy ``Gaussian2DKernel``).

    ``fwhm_pix`` is the PSF FWHM in pixels.  The kernel is square with odd side ``size``
    (default ``2*ceil(4 sigma)+1``, capturing >99.98 % of the light; it is renormalised to sum 1).
    """
    from astropy.convolution import Gaussian2DKernel

    if not fwhm_pix > 0:
        raise ValueError(f"fwhm_pix must be > 0, got {fwhm_pix}")
    sigma = float(fwhm_pix) / FWHM_PER_SIGMA
    if size is None:
        size = 2 * int(math.ceil(4.0 * sigma)) + 1
    size = max(int(size), 3)
    if size % 2 == 0:
        size += 1
    kernel = Gaussian2DKernel(x_stddev=sigma, x_size=size, y_size=size, mode="center")
    kernel.normalize()
    return kernel


def convolve_psf(images, fwhm_arcsec, pixel_scale: float) -> np.ndarray:
    """Convolve each band with a circular Gaussian PSF (astropy.convolution.convolve).

    images: ``(3, H, W)`` or ``(N, 3, H, W)`` (any number of bands works); fwhm_arcsec: one value
    or one per band (arcsec); pixel_scale: arcsec/pixel.  Boundary: zero fill outside the stamp
    (see the module docstring).  Returns float32 of the same shape; total flux is preserved for
    sources away from the edges.
    """
    from astropy.convolution import convolve

    arr = np.asarray(images)
    single = arr.ndim == 3
    if single:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"images must be (B,H,W) or (N,B,H,W), got shape {np.shape(images)}")
    nb = arr.shape[1]
    fwhm = _per_band(fwhm_arcsec, nb)
    out = np.empty(arr.shape, dtype=np.float32)
    for b in range(nb):
        kernel = gaussian_psf_kernel(fwhm[b] / pixel_scale)
        for i in range(arr.shape[0]):
            out[i, b] = convolve(
                arr[i, b].astype(np.float64),
                kernel,
                boundary="fill",
                fill_value=0.0,
                normalize_kernel=True,
                nan_treatment="fill",
            )
    return out[0] if single else out


def sky_noise_sigma(limiting_sb_mag, pixel_scale: float, fwhm_arcsec, nsigma: float = 5.0):
    """Per-pixel sky-noise sigma (nJy) for an ``nsigma`` limiting surface brightness.

    Implements the recipe of Ciprijanovic et al. (2020) / DeepMerge II:

        sigma_pix = 2**-0.5 * (3631e9 / nsigma) * 10**(-0.4 * SB_lim) * pixel_scale * 3 * FWHM

    with SB_lim in AB mag/arcsec^2, pixel_scale and FWHM in arcsec, sigma in nJy per pixel.
    ``fwhm_arcsec`` may be a scalar or per-band sequence (then an array is returned).
    """
    fwhm = np.asarray(fwhm_arcsec, dtype=float)
    sig = 2.0**-0.5 * (AB_ZEROPOINT_NJY / nsigma) * 10.0 ** (-0.4 * float(limiting_sb_mag)) * pixel_scale * 3.0 * fwhm
    return float(sig) if sig.ndim == 0 else sig


def limiting_sb_from_sigma(sigma_njy, pixel_scale: float, fwhm_arcsec, nsigma: float = 5.0):
    """Inverse of :func:`sky_noise_sigma`: the ``nsigma`` limiting surface brightness (mag/arcsec^2)."""
    sigma = np.asarray(sigma_njy, dtype=float)
    fwhm = np.asarray(fwhm_arcsec, dtype=float)
    val = -2.5 * np.log10(sigma * math.sqrt(2.0) * nsigma / (AB_ZEROPOINT_NJY * pixel_scale * 3.0 * fwhm))
    return float(val) if np.ndim(val) == 0 else val


def point_source_depth_sigma(depth_mag, fwhm_arcsec, pixel_scale: float, nsigma: float = 5.0):
    """Per-pixel sigma (nJy) such that a point source of AB magnitude ``depth_mag`` is detected at
    ``nsigma`` with optimal (PSF-weighted) photometry under a Gaussian PSF.

    Optimal photometry of a Gaussian PSF has noise-equivalent area n_eff = 4 pi sigma_psf^2
    (pixels), so sigma_pix = F_lim / (nsigma * sqrt(n_eff)).  Used for SDSS-like depths.
    """
    fwhm = np.asarray(fwhm_arcsec, dtype=float)
    sigma_psf_pix = fwhm / pixel_scale / FWHM_PER_SIGMA
    n_eff = 4.0 * math.pi * sigma_psf_pix**2
    sig = mag_to_njy(depth_mag) / (nsigma * np.sqrt(n_eff))
    return float(sig) if np.ndim(sig) == 0 else sig


def add_sky_noise(images, sigma_per_band, rng: np.random.Generator) -> np.ndarray:
    """Return ``images`` plus independent Gaussian sky noise, ``sigma_per_band`` per band.

    images: ``(B,H,W)`` or ``(N,B,H,W)``; sigma_per_band: scalar or length-B (same flux units);
    rng: a ``numpy.random.Generator`` (draws are made in one call, so the result depends only on
    the generator state and the shape).  The dtype of float inputs is kept (float32 stays float32).
    """
    arr = np.asarray(images)
    if arr.ndim not in (3, 4):
        raise ValueError(f"images must be (B,H,W) or (N,B,H,W), got shape {arr.shape}")
    nb = arr.shape[-3]
    sig = _per_band(sigma_per_band, nb)[:, None, None]
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
    noise = rng.standard_normal(arr.shape) * sig
    return (arr.astype(np.float64) + noise).astype(dtype)


def jpeg_roundtrip(rgb_hwc: np.ndarray, quality: int = 75) -> np.ndarray:
    """Encode an ``(H, W, 3)`` uint8 image as JPEG with Pillow and decode it again."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb_hwc, dtype=np.uint8)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def lupton_rgb_jpeg(
    images_irg,
    stretch: float = 0.5,
    Q: float = 10.0,
    minimum: float = 0.0,
    quality: int | Sequence[int] = 75,
    rng: np.random.Generator | None = None,
    band_scales: Sequence[float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """SDSS-style colour cutout: Lupton et al. (2004) asinh RGB (8 bit), JPEG-compressed, decoded.

    images_irg: ``(3,H,W)`` or ``(N,3,H,W)`` in band order (i, r, g) -> (R, G, B), best in SDSS
    nanomaggies (defaults ``stretch=0.5, Q=10`` follow astropy's SDSS example of
    ``make_lupton_rgb``).  ``band_scales`` multiply the bands first (colour balance).
    ``quality``: JPEG quality, or a ``(lo, hi)`` range drawn per image with ``rng``.
    Returns uint8 ``(3,H,W)`` or ``(N,3,H,W)`` (channel-first, R,G,B = i,r,g).
    """
    from astropy.visualization import make_lupton_rgb

    arr = np.asarray(images_irg, dtype=float)
    single = arr.ndim == 3
    if single:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise ValueError(f"images_irg must be (3,H,W) or (N,3,H,W), got {np.shape(images_irg)}")
    scales = _per_band(band_scales, 3)
    if np.ndim(quality) == 0:
        qualities = np.full(arr.shape[0], int(quality))
    else:
        lo, hi = (int(q) for q in quality)
        if rng is None:
            raise ValueError("a quality range needs an rng")
        qualities = rng.integers(lo, hi + 1, size=arr.shape[0])
    out = np.empty(arr.shape, dtype=np.uint8)
    for k in range(arr.shape[0]):
        r, g, b = (arr[k, j] * scales[j] for j in range(3))
        rgb = make_lupton_rgb(r, g, b, minimum=minimum, stretch=stretch, Q=Q)
        out[k] = jpeg_roundtrip(rgb, int(qualities[k])).transpose(2, 0, 1)
    return out[0] if single else out
