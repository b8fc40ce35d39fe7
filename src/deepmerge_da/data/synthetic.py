"""Embedded synthetic universe: a physically motivated forward model of merging and non-merging galaxies.

It renders labelled images for the two dataset pairs of DeepMerge II (Ciprijanovic et al. 2021, Sec. 4):

* **sim2sim** -- z ~ 2 galaxies in HST/JWST-like filters (F814W, F356W, F160W), 0.06"/px, 75x75.
  :func:`render_sim2sim` returns the *pristine* images (pixel-integrated light, before the PSF);
  :func:`observe_sim2sim` turns them into the paper's source (PSF-convolved) and target (the same
  objects, PSF-convolved plus sky noise for a 5 sigma limiting surface brightness of 25 mag/arcsec^2).
* **sim2real** -- :func:`render_sim2real_source`: z ~ 0 Illustris/SDSS-like mocks in (g, r, i) at
  0.24 kpc/px with dust, a 1 kpc Gaussian PSF and Gaussian noise for an average S/N of 25 (floats);
  :func:`render_sim2real_target`: *different* objects observed like SDSS (0.396"/px, seeing, SDSS
  depth, field stars, neighbours), rendered as Lupton asinh 8-bit RGB (R,G,B = i,r,g) and
  JPEG-compressed (uint8).

Physics / modelling choices
---------------------------
* Light profiles are rendered with GalSim (Sersic bulges, discs and spheroids, ``galsim.RandomKnots``
  clump positions).  Each morphological component is rendered **once** as a unit-flux template,
  integrated over the pixel, and the three bands are flux-weighted sums of the component templates
  with per-component colours (bulges red, discs intermediate, clumps/arms blue).  Pixel integration:
  GalSim's real-space (``method='no_pixel'``) profile is averaged over 2x2 sub-pixels everywhere,
  6x6 within 4 px of the component centre and 32x32 in the 3x3 central pixels of cuspy (n >= 1.5)
  profiles: <0.5 % per-pixel error against GalSim's exact real-space pixel convolution, at ~2 ms per
  component instead of 10-2600 ms for GalSim's FFT/real-space draws of n = 4 profiles.
* Clumps, spiral arms and tidal features (tails, bridges, shells, plumes) are sums of circular
  Gaussians integrated exactly over the pixels (error functions, separable).
* Units: flux per pixel in nJy (AB: 3631e9 nJy at magnitude 0).  Magnitudes and flux ratios are
  defined in a reference band (F160W for sim2sim, r for sim2real).
* Faint tidal features are normalised to a peak per-pixel brightness in units of the target's sky
  noise sigma (default 0.3-0.5 sigma for sim2sim: below the noise) -- see the parameter docs.
* Cosmology: Illustris-1 (flat LCDM, H0 = 70.4, Om0 = 0.2726, Ob0 = 0.0456): 8.53 kpc/" at z = 2.

Reproducibility
---------------
Every object draws its random numbers from ``numpy.random.SeedSequence(seed, spawn_key=(stream,
index))`` (spawned into independent sub-streams for structure, tidal features, neighbours and noise;
GalSim's ``BaseDeviate`` is seeded from these), so the images depend only on (params, seed, index) --
not on ``threads`` or chunking.  The tidal features have their own sub-stream: changing only
``tidal_fraction`` / ``tidal_peak_sigma`` / ``tidal_peak_sb_mag`` keeps every other pixel identical
(useful for ablations).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.special import erf

from deepmerge_da.data import observe
from deepmerge_da.data.observe import AB_ZEROPOINT_NJY, NJY_PER_NANOMAGGY, mag_to_njy

__all__ = [
    "GENERATOR_VERSION",
    "ILLUSTRIS_COSMOLOGY",
    "Sim2SimParams",
    "Sim2RealParams",
    "SyntheticSet",
    "render_sim2sim",
    "observe_sim2sim",
    "render_sim2real_source",
    "render_sim2real_target",
    "kpc_per_arcsec",
    "distance_modulus",
    "render_sersic_template",
    "render_gaussian_blobs",
]

GENERATOR_VERSION = "1.0"

#: Illustris-1 cosmology (WMAP9-like), used for angular scales and distance moduli.
ILLUSTRIS_COSMOLOGY = {"H0": 70.4, "Om0": 0.2726, "Ob0": 0.0456}

# random-stream identifiers (first element of the SeedSequence spawn key)
_STREAM_SIM2SIM = 1
_STREAM_SIM2REAL_SOURCE = 2
_STREAM_SIM2REAL_TARGET = 3
_STREAM_SIM2SIM_NOISE = 11
_STREAM_LABELS = 101

_MORPHS = ("clumpy_disc", "disc_bulge", "spheroid", "spiral")
_MERGER_TYPES = ("none", "future_pair", "past_remnant")


# ----------------------------------------------------------------------------------------------
# cosmology helpers
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _cosmology():
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(**ILLUSTRIS_COSMOLOGY)


def kpc_per_arcsec(z):
    """Proper kpc per arcsec at redshift ``z`` in the Illustris-1 cosmology (astropy)."""
    import astropy.units as u

    val = _cosmology().kpc_proper_per_arcmin(z).to(u.kpc / u.arcsec).value
    return float(val) if np.ndim(val) == 0 else val


def distance_modulus(z):
    """Distance modulus (mag) at redshift ``z`` in the Illustris-1 cosmology (astropy)."""
    val = _cosmology().distmod(z).value
    return float(val) if np.ndim(val) == 0 else val


@functools.lru_cache(maxsize=4)
def _cosmo_table(zmin: float, zmax: float):
    z = np.linspace(zmin, zmax, 256)
    return z, np.asarray(kpc_per_arcsec(z)), np.asarray(distance_modulus(z))


def _interp_cosmo(z: float, zrange: tuple[float, float]) -> tuple[float, float]:
    zg, kpa, dm = _cosmo_table(float(zrange[0]), float(zrange[1]))
    return float(np.interp(z, zg, kpa)), float(np.interp(z, zg, dm))


# ----------------------------------------------------------------------------------------------
# parameter objects
# ----------------------------------------------------------------------------------------------
def _p(default, unit: str, doc: str):
    """A dataclass field with its unit and justification recorded in ``metadata``."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for defaults")
    return field(default=default, metadata={"unit": unit, "doc": doc})


def _to_tuple(v):
    if isinstance(v, (list, tuple)):
        return tuple(_to_tuple(x) for x in v)
    if isinstance(v, np.ndarray):
        return tuple(_to_tuple(x) for x in v.tolist())
    return v


def _to_list(v):
    if isinstance(v, tuple):
        return [_to_list(x) for x in v]
    return v


class ParameterError(ValueError):
    """A physical parameter is unknown or wrong; ``name`` is the parameter (its key in a config section)."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def _check_kind(name: str, default, value) -> None:
    """Raise :class:`ParameterError` unless ``value`` is of the kind of ``default``: an integer, a number, a
    string, a number or null (a ``None`` default), or a list of such (the kind of the default's first entry)."""
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParameterError(name, f"{name} must be a list, got {value!r}")
        for entry in value if default else ():
            _check_kind(name, default[0], entry)
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int) and not (number and isinstance(value, int)):
        raise ParameterError(name, f"{name} must be an integer, got {value!r}")
    if isinstance(default, float) and not number:
        raise ParameterError(name, f"{name} must be a number, got {value!r}")
    if default is None and not (value is None or number):
        raise ParameterError(name, f"{name} must be a number or null, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        raise ParameterError(name, f"{name} must be a string, got {value!r}")


class _ParamsMixin:
    @classmethod
    def from_dict(cls, d: dict | None = None):
        """Build from a plain dict (e.g. a YAML config section); an unknown key or a value of the wrong kind
        raises :class:`ParameterError`."""
        d = dict(d or {})
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for key, value in d.items():
            if key not in defaults:
                raise ParameterError(key, f"unknown {cls.__name__} parameter {key!r} "
                                          f"(known: {', '.join(sorted(defaults))})")
            _check_kind(key, defaults[key], value)
        return cls(**{k: _to_tuple(v) for k, v in d.items()})

    def to_dict(self) -> dict:
        """Plain, JSON/YAML-serialisable dict (tuples become lists)."""
        return {f.name: _to_list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls) -> dict[str, dict[str, Any]]:
        """{name: {"default", "unit", "doc"}} for every parameter."""
        out = {}
        for f in dataclasses.fields(cls):
            out[f.name] = {"default": _to_list(f.default), "unit": f.metadata.get("unit", ""), "doc": f.metadata.get("doc", "")}
        return out

    def _check_ranges(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name.endswith(("_range", "_kpc", "_sigma", "_fraction_range")) and isinstance(v, tuple) and len(v) == 2:
                if all(isinstance(x, (int, float)) for x in v) and v[0] > v[1]:
                    raise ParameterError(f.name, f"{f.name}: lower bound {v[0]} > upper bound {v[1]}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if (f.name.endswith("_fraction") or f.name.endswith("_prob")) and isinstance(v, (int, float)):
                if not 0.0 <= v <= 1.0:
                    raise ParameterError(f.name, f"{f.name} must lie in [0, 1], got {v}")


@dataclass(frozen=True)
class Sim2SimParams(_ParamsMixin):
    """Physical parameters of the z ~ 2 HST/JWST-like pair (source = PSF only, target = PSF + sky noise).

    Every field carries ``metadata['unit']`` and ``metadata['doc']`` (see :meth:`describe`).
    Colours are AB magnitude offsets relative to the reference band, in filter order.
    """

    n_mergers: int = _p(1000, "objects", "Number of merger images (paper: 8120; small default for speed).")
    n_nonmergers: int = _p(1000, "objects", "Number of non-merger images (paper: 7306).")
    image_size: int = _p(75, "pixels", "Stamp side; the paper's images are 75x75.")
    pixel_scale: float = _p(0.06, "arcsec/pixel", "Drizzled CANDELS/3D-HST WFC3 and ACS mosaics use 0.06\"/px; 75 px = 4.5\" = 38 kpc at z=2.")
    filters: tuple = _p(("F814W", "F356W", "F160W"), "", "Band order of the paper's three-filter images (ACS F814W, NIRCam F356W, WFC3 F160W).")
    psf_fwhm_arcsec: tuple = _p((0.09, 0.13, 0.18), "arcsec", "Gaussian PSF FWHM per filter: ACS/WFC F814W ~0.09\", NIRCam F356W ~0.12-0.14\", WFC3/IR F160W ~0.18\".")
    limiting_sb_mag: float = _p(25.0, "AB mag/arcsec^2", "Limiting surface brightness of the target's sky noise (paper: 5 sigma = 25).")
    limiting_sb_nsigma: float = _p(5.0, "sigma", "Significance at which limiting_sb_mag is defined (paper: 5).")
    redshift: float = _p(2.0, "", "Redshift of the Illustris-1 snapshot used by the paper.")
    kpc_per_arcsec: float = _p(8.53, "kpc/arcsec", "Proper scale at z=2 in the Illustris-1 cosmology (astropy FlatLambdaCDM H0=70.4, Om0=0.2726); 0.512 kpc/px.")
    reference_band: int = _p(2, "index", "Band in which magnitudes, flux ratios and colours are defined (F160W, rest-frame V at z=2).")
    mag_range: tuple = _p((22.0, 24.5), "AB mag (F160W)", "Total magnitude of the whole system (single galaxy, pair or remnant), uniform: M* ~ 1e10-1e11 Msun galaxies at z=2 have H ~ 22-25 (CANDELS); drawn for the system so that total flux is no merger cue.")
    re_kpc_range: tuple = _p((1.0, 4.0), "kpc", "Effective (half-light, circularised) radius of the (primary) galaxy, log-uniform; z~2 star-forming galaxies have Re ~ 1-4 kpc (van der Wel et al. 2014).")
    morphology_probs: tuple = _p((0.40, 0.35, 0.25), "probability", "Probabilities of (clumpy disc, disc+bulge, spheroid) for single galaxies: z~2 massive galaxies are mostly clumpy star-forming discs, a quarter compact quiescent spheroids.")
    bulge_sersic_n: tuple = _p((2.0, 3.0, 4.0), "", "Sersic indices drawn for bulges/spheroids (quantised so GalSim caches its Sersic tables).")
    bulge_re_fraction_range: tuple = _p((0.2, 0.6), "Re", "Bulge half-light radius as a fraction of the disc's.")
    disc_min_axis_ratio: float = _p(0.3, "", "Intrinsic thickness of discs (edge-on axis ratio); z~2 discs are thick (q0 ~ 0.25-0.4).")
    clump_flux_fraction_range: tuple = _p((0.1, 0.4), "fraction of disc light", "Light in star-forming clumps of clumpy discs (Guo et al. 2015: 10-40 % in UV).")
    n_clumps_range: tuple = _p((3, 15), "clumps", "Number of clumps (galsim.RandomKnots positions, exponential distribution of the disc's half-light radius).")
    clump_sigma_kpc_range: tuple = _p((0.2, 0.6), "kpc", "Gaussian size of a clump (~1 kpc FWHM at z~2).")
    colour_bulge: tuple = _p((2.2, -0.8, 0.0), "AB mag rel. F160W", "Old stars: F814W-F160W ~ 2.2 (rest UV-V), F356W-F160W ~ -0.8 (rest J brighter).")
    colour_disc: tuple = _p((1.0, -0.35, 0.0), "AB mag rel. F160W", "Dusty star-forming disc colours at z~2.")
    colour_clump: tuple = _p((0.3, 0.05, 0.0), "AB mag rel. F160W", "Young clumps: nearly flat f_nu, blue.")
    colour_tidal: tuple = _p((0.8, -0.3, 0.0), "AB mag rel. F160W", "Tidal debris: stripped disc stars, disc-like colours.")
    colour_scatter_mag: float = _p(0.15, "mag", "Per-galaxy Gaussian scatter of all colours (each non-reference band).")
    merger_past_fraction: float = _p(0.5, "fraction of mergers", "Past (remnant) vs future (pair) mergers: the paper's 0.5 Gyr window is centred on the snapshot.")
    flux_ratio_range: tuple = _p((1.0, 10.0), "", "Flux (~stellar-mass) ratio of a future-merger pair, log-uniform: the paper's major-merger criterion is up to 10:1.")
    separation_min_kpc: float = _p(2.0, "kpc", "Smallest projected separation of a pair (~2 F160W FWHM).")
    separation_max_re: float = _p(3.0, "Re of primary", "Largest projected separation, in primary effective radii (pairs within the 0.5 Gyr window are close).")
    double_nucleus_fraction: float = _p(0.6, "fraction of past mergers", "Remnants showing a resolved, offset second nucleus.")
    double_nucleus_offset_kpc: tuple = _p((1.0, 3.0), "kpc", "Offset of the second nucleus (resolved at F160W: FWHM 1.5 kpc).")
    double_nucleus_flux_fraction: tuple = _p((0.08, 0.35), "fraction of system flux", "Light in the second nucleus.")
    remnant_offset_re: tuple = _p((0.1, 0.35), "Re", "Lopsidedness of remnants: offset between the disc/envelope and the bulge.")
    remnant_bulge_boost: float = _p(0.2, "B/T", "Added bulge-to-total ratio of remnants (mergers build bulges).")
    tidal_fraction: float = _p(0.9, "fraction of mergers", "Mergers that show tidal features (set 0 for the no-tidal-feature ablation; other pixels stay identical).")
    tidal_peak_sigma: tuple = _p((0.3, 0.5), "target sky sigma", "Per-pixel peak of the tidal features (pristine, before PSF) in the band where they are most significant, in units of that band's target sky sigma, uniform per object: below the noise, so lost in the target (prototype: 0.4 sigma).")
    tidal_peak_sb_mag: float | None = _p(None, "AB mag/arcsec^2 (reference band)", "If set, overrides tidal_peak_sigma: peak surface brightness of the tidal features in the reference band.")
    tail_length_kpc: tuple = _p((6.0, 16.0), "kpc", "Length of tidal tails.")
    tail_width_kpc: tuple = _p((0.6, 1.5), "kpc", "Gaussian half-width (sigma) of tails/bridges at their base (they broaden outwards).")
    bridge_fraction: float = _p(0.6, "fraction of future mergers", "Pairs with a stellar bridge.")
    shell_fraction: float = _p(0.6, "fraction of past mergers", "Remnants with shells (2-4 interleaved arcs at 1.5-4 Re).")
    nonmerger_halo_fraction: float = _p(0.0, "fraction of non-mergers", "Non-mergers with a faint symmetric diffuse halo (as pristine Illustris images have); 0 = off.")
    nonmerger_halo_peak_sigma: tuple = _p((0.1, 0.3), "target sky sigma", "Peak of that halo, as tidal_peak_sigma.")
    neighbour_prob: float = _p(0.3, "probability", "Chance of faint unrelated neighbours in the stamp (both classes, so 'two objects' is no perfect cue).")
    neighbour_mag_offset: tuple = _p((1.5, 4.5), "mag", "Neighbours are fainter than the system by this much.")
    neighbour_re_kpc: tuple = _p((0.4, 1.5), "kpc", "Neighbour sizes (small background/foreground galaxies).")
    centre_jitter_px: float = _p(1.5, "pixels", "Gaussian jitter of the system centre.")

    def __post_init__(self):
        for name in ("n_mergers", "n_nonmergers"):
            if getattr(self, name) < 0:
                raise ParameterError(name, f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_mergers + self.n_nonmergers == 0:
            raise ParameterError("n_mergers", "n_mergers and n_nonmergers must not both be 0")
        if self.image_size < 16:
            raise ParameterError("image_size", f"image_size must be >= 16, got {self.image_size}")
        for name in ("filters", "psf_fwhm_arcsec", "colour_bulge", "colour_disc", "colour_clump", "colour_tidal"):
            if len(getattr(self, name)) != 3:
                raise ParameterError(name, f"{name} needs 3 entries (one per band), got {getattr(self, name)}")
        if len(self.morphology_probs) != 3 or abs(sum(self.morphology_probs) - 1) > 1e-6:
            raise ParameterError("morphology_probs", f"morphology_probs: 3 probabilities summing to 1, got "
                                                     f"{self.morphology_probs}")
        if not 0 <= self.reference_band < 3:
            raise ParameterError("reference_band", f"reference_band must be 0, 1 or 2, got {self.reference_band}")
        self._check_ranges()

    @property
    def kpc_per_pixel(self) -> float:
        return self.pixel_scale * self.kpc_per_arcsec

    def sky_sigma(self) -> np.ndarray:
        """Per-band target sky noise sigma in nJy/pixel (DeepMerge II recipe)."""
        return np.asarray(observe.sky_noise_sigma(self.limiting_sb_mag, self.pixel_scale, self.psf_fwhm_arcsec, self.limiting_sb_nsigma))


@dataclass(frozen=True)
class Sim2RealParams(_ParamsMixin):
    """Parameters of the sim2real pair: ``source_*`` = Illustris z~0 SDSS-like mocks (g, r, i, floats),
    ``target_*`` = SDSS-like observed JPEG cutouts (i, r, g as R, G, B; uint8), different objects.

    Colours are AB magnitude offsets relative to r, in the respective filter order.
    """

    # ---------------- source: z ~ 0 simulated mocks (Snyder et al. 2015 style) ----------------
    source_n_objects: int = _p(2000, "objects", "Source images (paper: 5669 before augmentation).")
    source_merger_fraction: float = _p(0.5, "fraction", "Post-merger fraction; the paper's source had 44/5669 = 0.0078 (set that for fidelity; the workflow augments and balances).")
    image_size: int = _p(75, "pixels", "Stamp side of both domains' outputs (real SDSS cutouts are 128 px and get resized downstream).")
    source_filters: tuple = _p(("g", "r", "i"), "", "SDSS filters of the simulated mocks, in the paper's source order.")
    source_pixel_scale_kpc: float = _p(0.24, "kpc/pixel", "Re-binned constant physical scale of the mocks (paper).")
    source_redshift: float = _p(0.05, "", "Redshift at which the mocks are 'observed' (paper: 1 kpc = 1\" at z=0.05); sets fluxes and the arcsec pixel scale.")
    source_psf_fwhm_kpc: float = _p(1.0, "kpc", "Gaussian PSF FWHM, same in all bands (paper).")
    source_snr: float = _p(25.0, "", "Median per-object S/N: the mean per-pixel S/N (signal/sigma) of the galaxy body in a circular aperture of radius snr_aperture_re*Re, each band separately (paper: average S/N = 25).")
    source_snr_scatter_dex: float = _p(0.1, "dex", "Log-normal scatter of the per-object S/N.")
    snr_aperture_re: float = _p(2.0, "Re", "Aperture radius of the S/N definition.")
    source_mag_r_range: tuple = _p((14.0, 17.0), "AB mag (r)", "Apparent r magnitude of the system (sets the nJy scale; the noise follows the S/N).")
    source_re_kpc: tuple = _p((1.5, 4.0), "kpc", "Effective radius (log-uniform), framed so that 2 Re fits in the 18 kpc stamp.")
    source_morphology_probs: tuple = _p((0.45, 0.30, 0.25), "probability", "(spiral disc+bulge+arms, disc+bulge, spheroid) of z~0 massive galaxies.")
    source_double_nucleus_fraction: float = _p(0.3, "fraction of post-mergers", "Source remnants with a second core: the simulated post-mergers show a greater variety than SDSS ones (paper Sec. 4.2.2).")
    source_double_nucleus_offset_kpc: tuple = _p((0.7, 3.0), "kpc", "Offset of that second core.")
    source_tidal_peak_sigma: tuple = _p((1.0, 3.0), "source noise sigma", "Peak of tidal features (pristine) in units of the object's noise sigma in the most significant band: visible but faint.")
    source_neighbour_prob: float = _p(0.1, "probability", "Neighbours in the simulated stamps (the mocks image one subhalo's surroundings).")
    # ---------------- shared galaxy-population knobs ----------------
    bulge_sersic_n: tuple = _p((2.0, 3.0, 4.0), "", "Bulge/spheroid Sersic indices (quantised).")
    bulge_re_fraction_range: tuple = _p((0.15, 0.5), "Re", "Bulge half-light radius relative to the disc.")
    disc_min_axis_ratio: float = _p(0.15, "", "Edge-on axis ratio of z~0 thin discs.")
    arm_flux_fraction_range: tuple = _p((0.05, 0.25), "fraction of disc light", "Light in spiral arms (2 log-spiral arms, pitch 12-25 deg).")
    colour_bulge_gri: tuple = _p((0.75, 0.0, -0.40), "AB mag rel. r (g, r, i)", "Red sequence: g-r ~ 0.75, r-i ~ 0.40.")
    colour_disc_gri: tuple = _p((0.45, 0.0, -0.22), "AB mag rel. r (g, r, i)", "Star-forming discs before dust.")
    colour_arm_gri: tuple = _p((0.15, 0.0, -0.05), "AB mag rel. r (g, r, i)", "Young arm populations.")
    colour_tidal_gri: tuple = _p((0.55, 0.0, -0.28), "AB mag rel. r (g, r, i)", "Tidal debris.")
    colour_scatter_mag: float = _p(0.08, "mag", "Per-galaxy colour scatter.")
    dust_tau_v_range: tuple = _p((0.1, 1.0), "optical depth", "Face-on central V-band optical depth of the dust slab (screen following the disc light, scaled by 1/q with inclination; Snyder et al. 2015 / Nelson et al. 2018 slab).")
    dust_band_ratio_gri: tuple = _p((1.07, 0.74, 0.55), "A_band/A_V", "Extinction-law ratios for SDSS g, r, i (Schlafly & Finkbeiner 2011, R_V=3.1): dust reddens and dims discs, most in g.")
    remnant_offset_re: tuple = _p((0.1, 0.35), "Re", "Lopsidedness of remnants (envelope vs bulge offset).")
    tail_length_kpc: tuple = _p((6.0, 20.0), "kpc", "Tidal-tail lengths at z~0.")
    tail_width_kpc: tuple = _p((0.6, 1.5), "kpc", "Tidal-tail Gaussian width (sigma) at the base.")
    shell_fraction: float = _p(0.5, "fraction of post-mergers", "Remnants with shells.")
    # ---------------- target: SDSS-like observed cutouts ----------------
    target_n_objects: int = _p(2000, "objects", "Target images (paper: 3000 + 3000 after augmenting 310 post-mergers).")
    target_merger_fraction: float = _p(0.5, "fraction", "Post-merger fraction of the target.")
    target_filters: tuple = _p(("i", "r", "g"), "", "SDSS cutout-server colour images: R, G, B = i, r, g.")
    target_pixel_scale: float = _p(0.396, "arcsec/pixel", "SDSS imaging camera pixel scale.")
    target_redshift_range: tuple = _p((0.02, 0.09), "", "Galaxy Zoo / Darg et al. (2010) mergers lie at 0.005 < z < 0.1.")
    target_abs_mag_r_range: tuple = _p((-22.5, -20.0), "AB mag (r)", "Absolute magnitudes of the SDSS main sample at these redshifts (r < 17.77).")
    target_mag_r_limit: float = _p(17.77, "AB mag (r)", "SDSS main-galaxy-sample limit (Galaxy Zoo parent sample): the absolute-magnitude draw is truncated so that r <= this.")
    target_re_kpc: tuple = _p((1.5, 6.0), "kpc", "Effective radii of real z~0.05 galaxies (log-uniform).")
    target_max_re_frac: float = _p(0.16, "image size", "Cap of the angular Re (pixels) as a fraction of the stamp side, standing in for the cutout framing of real surveys (Galaxy Zoo cutouts scale with the galaxy's Petrosian radius).")
    target_psf_fwhm_arcsec: tuple = _p((1.3, 1.4, 1.5), "arcsec (i, r, g)", "SDSS median seeing ~1.3-1.5\", worse in bluer bands.")
    target_depth_mag: tuple = _p((21.3, 22.2, 22.2), "AB mag (i, r, g), 5 sigma point source", "SDSS 95 % completeness limits for point sources; sets the per-pixel noise with optimal PSF photometry.")
    target_double_core_fraction: float = _p(0.85, "fraction of post-mergers", "SDSS post-mergers 'clearly exhibit two bright galaxy cores' (paper Sec. 4.2.2).")
    target_core_separation_kpc: tuple = _p((2.0, 9.0), "kpc", "Separation of the two cores (resolved at 1.4\" seeing ~ 1.4 kpc at z=0.05).")
    target_core_flux_ratio: tuple = _p((1.0, 4.0), "", "Flux ratio of the two cores (log-uniform).")
    target_tidal_peak_sigma: tuple = _p((1.0, 5.0), "target noise sigma", "Peak of the tidal features in units of the target noise (visual Galaxy Zoo mergers need visible disturbances).")
    target_neighbour_prob: float = _p(0.4, "probability", "Neighbouring galaxies in SDSS cutouts (both classes).")
    target_star_mean: float = _p(0.6, "stars per stamp", "Poisson mean of field stars in a 30\" stamp at high latitude (~2000 stars/deg^2 to r=21).")
    target_star_mag_range: tuple = _p((13.0, 21.0), "AB mag (r)", "Star magnitudes (drawn with dN/dm ~ 10^(0.2 m)); bright stars saturate the 8-bit stretch.")
    lupton_stretch: float = _p(0.5, "nanomaggies", "Linear range of the asinh stretch (astropy's SDSS example).")
    lupton_q: float = _p(10.0, "", "Asinh softening parameter Q (astropy's SDSS example).")
    lupton_minimum: float = _p(0.0, "nanomaggies", "Black level (SDSS frames are sky-subtracted).")
    lupton_band_scales: tuple = _p((1.0, 1.5, 2.5), "", "Multipliers of the (i, r, g) nanomaggy images before the stretch: colour balance that boosts g and r relative to i, as SDSS-style composites do (astrometry.net's sdss_rgb uses i:r:g = 1:1.5:2.5), so typical galaxies look yellow-white rather than red.")
    jpeg_quality: int = _p(75, "", "JPEG quality of the cutouts (Pillow).")

    def __post_init__(self):
        for name in ("source_n_objects", "target_n_objects"):
            if getattr(self, name) < 1:
                raise ParameterError(name, f"{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 16:
            raise ParameterError("image_size", f"image_size must be >= 16, got {self.image_size}")
        for name in ("source_filters", "target_filters", "target_psf_fwhm_arcsec", "target_depth_mag", "colour_bulge_gri",
                     "colour_disc_gri", "colour_arm_gri", "colour_tidal_gri", "dust_band_ratio_gri", "lupton_band_scales"):
            if len(getattr(self, name)) != 3:
                raise ParameterError(name, f"{name} needs 3 entries (one per band), got {getattr(self, name)}")
        if len(self.source_morphology_probs) != 3 or abs(sum(self.source_morphology_probs) - 1) > 1e-6:
            raise ParameterError("source_morphology_probs", "source_morphology_probs: 3 probabilities summing to 1, "
                                                            f"got {self.source_morphology_probs}")
        self._check_ranges()

    @property
    def source_kpc_per_arcsec(self) -> float:
        return kpc_per_arcsec(self.source_redshift)

    @property
    def source_pixel_scale(self) -> float:
        """Source pixel scale in arcsec (0.24 kpc at z=0.05 ~ 0.247\")."""
        return self.source_pixel_scale_kpc / self.source_kpc_per_arcsec

    @property
    def source_n_mergers(self) -> int:
        return int(round(self.source_n_objects * self.source_merger_fraction))

    @property
    def target_n_mergers(self) -> int:
        return int(round(self.target_n_objects * self.target_merger_fraction))


# ----------------------------------------------------------------------------------------------
# the data container
# ----------------------------------------------------------------------------------------------
@dataclass
class SyntheticSet:
    """Rendered images with labels and ids.

    images: (N, 3, H, W) float32 (nJy/pixel) or uint8 (JPEG-decoded RGB); labels: (N,) int8,
    1 = merger; object_id: (N,) int64, unique (encodes dataset, seed and index); filters: band
    order; pixel_scale: arcsec/pixel; meta: JSON-serialisable description (units, PSF, sigma, seed,
    parameters); catalog: per-object truth (dict of (N,) or (N, 3) arrays).
    """

    images: np.ndarray
    labels: np.ndarray
    object_id: np.ndarray
    filters: tuple
    pixel_scale: float
    meta: dict = field(default_factory=dict)
    catalog: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# ----------------------------------------------------------------------------------------------
# low-level renderers (pixel-integrated unit-flux templates)
# ----------------------------------------------------------------------------------------------
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


def render_sersic_template(n: float, hlr_pix: float, q: float, beta: float, x: float, y: float, size: int) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------
# galaxy building blocks
# ----------------------------------------------------------------------------------------------
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
        comps.append((_Blobs(xd + pts[:, 0], yd + pts[:, 1], ks, kw / kw.sum()), fdisc * fclump, _sed(style, "clump", delta)))
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


def _concat_blobs(blobs: list[_Blobs]) -> _Blobs:
    if not blobs:
        return _Blobs(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    return _Blobs(*(np.concatenate([getattr(b, a) for b in blobs]) for a in ("x", "y", "sigma", "w")))


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


def _normalised_template(blobs: _Blobs, size: int) -> np.ndarray:
    """Template with peak pixel 1 (zeros if empty)."""
    t = render_gaussian_blobs(blobs.x, blobs.y, blobs.sigma, blobs.w, size)
    peak = t.max() if t.size else 0.0
    return t / peak if peak > 0 else np.zeros((size, size))


def _peak_amplitude(level_sigma: float, sed: np.ndarray, sigma_b: np.ndarray) -> float:
    """Reference-band amplitude such that max_b(A * sed_b / sigma_b) = level_sigma."""
    return float(level_sigma / np.max(np.asarray(sed) / np.asarray(sigma_b)))


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


def _object_rngs(seed: int, stream: int, index: int, n: int = 5):
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(stream), int(index)))
    return [np.random.default_rng(s) for s in ss.spawn(n)]


# ----------------------------------------------------------------------------------------------
# sim2sim objects
# ----------------------------------------------------------------------------------------------
def _sim2sim_style(P: Sim2SimParams) -> _Style:
    kpx = P.kpc_per_pixel
    return _Style(
        ref=P.reference_band,
        colours={"bulge": P.colour_bulge, "disc": P.colour_disc, "clump": P.colour_clump, "arm": P.colour_clump, "tidal": P.colour_tidal},
        colour_scatter=P.colour_scatter_mag,
        bulge_n=P.bulge_sersic_n,
        bulge_re_fraction=P.bulge_re_fraction_range,
        q0=P.disc_min_axis_ratio,
        clump_flux_fraction=P.clump_flux_fraction_range,
        n_clumps=P.n_clumps_range,
        clump_sigma_px=(P.clump_sigma_kpc_range[0] / kpx, P.clump_sigma_kpc_range[1] / kpx),
    )


_SIM2SIM_CATALOG = {
    "merger_type": (np.int8, 0),
    "morphology": (np.int8, -1),
    "mag_ref": (np.float32, np.nan),
    "re_kpc": (np.float32, np.nan),
    "flux_ratio": (np.float32, np.nan),
    "separation_kpc": (np.float32, np.nan),
    "double_nucleus": (np.bool_, False),
    "has_tidal": (np.bool_, False),
    "tidal_peak_sigma": (np.float32, np.nan),
    "tidal_peak_njy": (np.float32, np.nan),  # (N, 3)
    "n_neighbours": (np.int8, 0),
}


def _sim2sim_object(P: Sim2SimParams, seed: int, index: int, label: int):
    r_main, r_tidal, r_nb, r_halo, _ = _object_rngs(seed, _STREAM_SIM2SIM, index)
    N = P.image_size
    kpx = P.kpc_per_pixel
    style = _sim2sim_style(P)
    sig_b = P.sky_sigma()
    c0 = (N - 1) / 2.0
    cx, cy = c0 + r_main.normal(0, P.centre_jitter_px), c0 + r_main.normal(0, P.centre_jitter_px)
    mag = r_main.uniform(*P.mag_range)
    fsys = float(mag_to_njy(mag))
    re1 = _loguniform(r_main, *P.re_kpc_range) / kpx
    info = {"mag_ref": mag, "re_kpc": re1 * kpx}
    morphs = ("clumpy_disc", "disc_bulge", "spheroid")
    comps = []
    tails: list[_Blobs] = []
    # tidal sub-stream: draw its decision and level first, always (ablation-stable)
    has_tidal = bool(label == 1 and r_tidal.random() < P.tidal_fraction)
    level = r_tidal.uniform(*P.tidal_peak_sigma)
    tw = r_tidal.uniform(*P.tail_width_kpc) / kpx
    if label == 1:
        past = r_main.random() < P.merger_past_fraction
        if not past:
            ratio = _loguniform(r_main, *P.flux_ratio_range) if P.flux_ratio_range[1] > P.flux_ratio_range[0] else P.flux_ratio_range[0]
            f1, f2 = fsys * ratio / (1 + ratio), fsys / (1 + ratio)
            re2 = max(0.6 / kpx, re1 * ratio**-0.3)
            smin = P.separation_min_kpc / kpx
            sep = r_main.uniform(smin, max(smin + 1.0, P.separation_max_re * re1))
            ang = r_main.uniform(0, 2 * math.pi)
            u = np.array([math.cos(ang), math.sin(ang)])
            p1 = np.array([cx, cy]) - sep * (f2 / fsys) * u
            p2 = np.array([cx, cy]) + sep * (f1 / fsys) * u
            m1 = morphs[r_main.choice(3, p=P.morphology_probs)]
            m2 = morphs[r_main.choice(3, p=P.morphology_probs)]
            c1, _, _ = _galaxy(r_main, style, x=p1[0], y=p1[1], flux=f1, re=re1, morph=m1,
                               disc_offset=tuple(r_main.normal(0, 0.1 * re1, 2)))
            c2, _, _ = _galaxy(r_main, style, x=p2[0], y=p2[1], flux=f2, re=re2, morph=m2,
                               disc_offset=tuple(r_main.normal(0, 0.1 * re2, 2)))
            comps += c1 + c2
            info.update(merger_type=1, morphology=_MORPHS.index(m1), flux_ratio=ratio, separation_kpc=sep * kpx)
            sense = 1.0 if r_tidal.random() < 0.5 else -1.0
            for pa, pb, rr in ((p1, p2, re1), (p2, p1, re2)):
                away = math.atan2(pa[1] - pb[1], pa[0] - pb[0])
                make = r_tidal.random() < 0.75
                t = _tail(r_tidal, pa[0], pa[1], rr, away + r_tidal.normal(0, 0.6), sense,
                          r_tidal.uniform(*P.tail_length_kpc) / kpx, tw)
                if make:
                    tails.append(t)
            make = r_tidal.random() < P.bridge_fraction
            b = _bridge(r_tidal, p1, p2, tw * 0.8)
            if make:
                tails.append(b)
        else:
            m = ("disc_bulge", "spheroid", "clumpy_disc")[r_main.choice(3, p=(0.5, 0.35, 0.15))]
            off_r = r_main.uniform(*P.remnant_offset_re) * re1
            off_a = r_main.uniform(0, 2 * math.pi)
            dn = r_main.random() < P.double_nucleus_fraction
            fdn = r_main.uniform(*P.double_nucleus_flux_fraction)
            dno = r_main.uniform(*P.double_nucleus_offset_kpc) / kpx
            dna = r_main.uniform(0, 2 * math.pi)
            dn_hlr = r_main.uniform(0.3, 0.8) / kpx
            fmain = fsys * (1 - fdn) if dn else fsys
            cg, _, _ = _galaxy(r_main, style, x=cx, y=cy, flux=fmain, re=re1, morph=m,
                               disc_offset=(off_r * math.cos(off_a), off_r * math.sin(off_a)))
            # remnants build bulges: move light from the disc to the bulge
            boost = P.remnant_bulge_boost
            if boost > 0 and cg[0][1] < fmain:
                move = min(boost * fmain, cg[1][1])
                cg[0] = (cg[0][0], cg[0][1] + move, cg[0][2])
                cg[1] = (cg[1][0], cg[1][1] - move, cg[1][2])
            comps += cg
            if dn:
                nuc = _Sersic(2.0, dn_hlr, r_main.uniform(0.6, 1.0), r_main.uniform(0, math.pi),
                              cx + dno * math.cos(dna), cy + dno * math.sin(dna))
                comps.append((nuc, fsys * fdn, cg[0][2]))
            info.update(merger_type=2, morphology=_MORPHS.index(m), double_nucleus=bool(dn),
                        separation_kpc=dno * kpx if dn else np.nan)
            make_sh = r_tidal.random() < P.shell_fraction
            sh = _shells(r_tidal, cx, cy, re1, tw * 0.7)
            if make_sh:
                tails += sh
            ntails = int(r_tidal.integers(1, 3))
            sense = 1.0 if r_tidal.random() < 0.5 else -1.0
            a0 = r_tidal.uniform(0, 2 * math.pi)
            for k in range(ntails):
                tails.append(_tail(r_tidal, cx, cy, re1, a0 + k * math.pi + r_tidal.normal(0, 0.4), sense,
                                   r_tidal.uniform(*P.tail_length_kpc) / kpx, tw))
            make_pl = r_tidal.random() < 0.5
            pl = _plume(r_tidal, cx, cy, re1)
            if make_pl:
                tails.append(pl)
    else:
        m = morphs[r_main.choice(3, p=P.morphology_probs)]
        cg, _, _ = _galaxy(r_main, style, x=cx, y=cy, flux=fsys, re=re1, morph=m)
        comps += cg
        info.update(merger_type=0, morphology=_MORPHS.index(m))
    nb, nnb = _neighbours(r_nb, style, N, fsys, P.neighbour_mag_offset,
                          (P.neighbour_re_kpc[0] / kpx, P.neighbour_re_kpc[1] / kpx), P.neighbour_prob, (c0, c0))
    comps += nb
    info["n_neighbours"] = nnb
    img = _render(comps, N)
    sed_t = _sed(style, "tidal", np.zeros(3))
    if has_tidal and tails:
        tmpl = _normalised_template(_concat_blobs(tails), N)
        if P.tidal_peak_sb_mag is not None:
            amp = float(observe.sb_mag_to_njy_per_pixel(P.tidal_peak_sb_mag, P.pixel_scale))
        else:
            amp = _peak_amplitude(level, sed_t, sig_b)
        img += (amp * sed_t)[:, None, None] * tmpl[None]
        info.update(has_tidal=True, tidal_peak_sigma=float(np.max(amp * sed_t / sig_b)), tidal_peak_njy=amp * sed_t)
    if label == 0 and r_halo.random() < P.nonmerger_halo_fraction:
        hl = r_halo.uniform(*P.nonmerger_halo_peak_sigma)
        halo = _Blobs(np.array([cx]), np.array([cy]), np.array([r_halo.uniform(2.0, 3.5) * re1]), np.array([1.0]))
        img += (_peak_amplitude(hl, sed_t, sig_b) * sed_t)[:, None, None] * _normalised_template(halo, N)[None]
    return img.astype(np.float32), info


# ----------------------------------------------------------------------------------------------
# sim2real objects
# ----------------------------------------------------------------------------------------------
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
}

_GRI_SOURCE_ORDER = (0, 1, 2)  # (g, r, i)
_GRI_TARGET_ORDER = (2, 1, 0)  # (i, r, g)


def _sim2real_source_object(P: Sim2RealParams, seed: int, index: int, label: int):
    r_main, r_tidal, r_nb, r_noise, _ = _object_rngs(seed, _STREAM_SIM2REAL_SOURCE, index)
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
        fdn = r_main.uniform(0.1, 0.35)
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
                                              y=cy + off_r * math.sin(off_a), flux=fsys - fcore, re=re * 1.2, morph="disc_bulge")
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
    obs = observe.convolve_psf(img, P.target_psf_fwhm_arcsec, ps).astype(np.float64)
    # field stars, drawn directly as pixel-integrated Gaussian PSFs (sub-pixel positions)
    nst = int(r_star.poisson(P.target_star_mean))
    for _ in range(nst):
        sx, sy = r_star.uniform(-0.5, N - 0.5, 2)
        smag = _sample_star_mag(r_star, *P.target_star_mag_range)
        gr = r_star.uniform(0.3, 1.4)
        ri = 0.1 + 0.45 * (gr - 0.3) + r_star.normal(0, 0.05)
        colours = {0: -ri, 1: 0.0, 2: gr}  # (i, r, g) relative to r
        for b in range(3):
            sig_psf = P.target_psf_fwhm_arcsec[b] / ps / observe.FWHM_PER_SIGMA
            obs[b] += float(mag_to_njy(smag + colours[b])) * render_gaussian_blobs(sx, sy, sig_psf, 1.0, N)
    info["n_stars"] = nst
    out = observe.add_sky_noise(obs, sigma, r_noise)
    return out, info


def _sim2real_target_object(P: Sim2RealParams, seed: int, index: int, label: int):
    img, info = _sim2real_target_float(P, seed, index, label)
    rgb = observe.lupton_rgb_jpeg(img / NJY_PER_NANOMAGGY, stretch=P.lupton_stretch, Q=P.lupton_q,
                                  minimum=P.lupton_minimum, quality=P.jpeg_quality, band_scales=P.lupton_band_scales)
    return rgb, info


# ----------------------------------------------------------------------------------------------
# batch machinery
# ----------------------------------------------------------------------------------------------
_OBJECT_FUNCS: dict[str, Callable] = {
    "sim2sim": _sim2sim_object,
    "sim2real_source": _sim2real_source_object,
    "sim2real_target": _sim2real_target_object,
}
_CATALOGS = {"sim2sim": _SIM2SIM_CATALOG, "sim2real_source": _SIM2REAL_SOURCE_CATALOG, "sim2real_target": _SIM2REAL_TARGET_CATALOG}
_ID_CODE = {"sim2sim": 1, "sim2real_source": 2, "sim2real_target": 3}
_STREAMS = {"sim2sim": _STREAM_SIM2SIM, "sim2real_source": _STREAM_SIM2REAL_SOURCE, "sim2real_target": _STREAM_SIM2REAL_TARGET}


def _start_method() -> str:
    """Multiprocessing start method: ``$DEEPMERGE_MP_START`` if set, else 'fork' where available.

    'fork' starts workers in milliseconds and, unlike 'spawn'/'forkserver', does not re-import the
    caller's ``__main__`` (Snakemake ``script:`` files, notebooks and unguarded scripts work).  The
    workers only run numpy/scipy/GalSim/astropy code (no torch, no OpenMP regions), so the usual
    fork-after-threads hazard does not bite; set DEEPMERGE_MP_START=spawn to be strict (the caller
    then needs an ``if __name__ == "__main__":`` guard).  Results are identical either way.
    """
    import multiprocessing as mp

    env = os.environ.get("DEEPMERGE_MP_START")
    if env:
        return env
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def _render_chunk(task):
    kind, params, seed, indices, labels = task
    fn = _OBJECT_FUNCS[kind]
    imgs, infos = [], []
    for i, lab in zip(indices, labels):
        im, info = fn(params, seed, int(i), int(lab))
        imgs.append(im)
        infos.append(info)
    return indices, np.stack(imgs), infos


def _make_labels(n_m: int, n_nm: int, seed: int, stream: int) -> np.ndarray:
    labels = np.concatenate([np.ones(n_m, np.int8), np.zeros(n_nm, np.int8)])
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(_STREAM_LABELS, int(stream))))
    return labels[rng.permutation(labels.size)]


def _object_ids(kind: str, seed: int, n: int) -> np.ndarray:
    """id = dataset_code * 1e15 + (seed mod 1e8) * 1e7 + index: unique within and across sets."""
    if n >= 10**7:
        raise ValueError("at most 1e7 objects per set")
    return (np.int64(_ID_CODE[kind]) * np.int64(10**15) + np.int64(int(seed) % 10**8) * np.int64(10**7)
            + np.arange(n, dtype=np.int64))


def _run(kind: str, params, seed: int, labels: np.ndarray, threads: int, progress: bool, dtype):
    import tqdm

    n = labels.size
    indices = np.arange(n)
    threads = max(1, int(threads or 1))
    chunk = max(1, min(64, math.ceil(n / (threads * 8))))
    tasks = [(kind, params, int(seed), indices[a:a + chunk], labels[a:a + chunk]) for a in range(0, n, chunk)]
    images = None
    infos: list = [None] * n
    bar = tqdm.tqdm(total=n, desc=f"render {kind}", unit="gal", disable=not progress, leave=False)

    def place(res):
        nonlocal images
        idx, ims, inf = res
        if images is None:
            images = np.empty((n,) + ims.shape[1:], dtype=dtype)
        images[idx] = ims
        for i, d in zip(idx, inf):
            infos[int(i)] = d
        bar.update(len(idx))

    try:
        if threads == 1 or len(tasks) == 1:
            for t in tasks:
                place(_render_chunk(t))
        else:
            import multiprocessing as mp

            ctx = mp.get_context(_start_method())
            saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
            for k in saved:
                os.environ[k] = "1"
            try:
                with ctx.Pool(processes=min(threads, len(tasks))) as pool:
                    for res in pool.imap_unordered(_render_chunk, tasks):
                        place(res)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    finally:
        bar.close()
    catalog = {}
    for key, (dt, default) in _CATALOGS[kind].items():
        vals = [d.get(key, default) for d in infos]
        if any(np.ndim(v) > 0 for v in vals):
            vals = [np.broadcast_to(np.asarray(v, dtype=float), (3,)) for v in vals]
        catalog[key] = np.asarray(vals).astype(dt)
    return images, catalog


def _check_seed(seed) -> int:
    seed = int(seed)
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return seed


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def render_sim2sim(params: Sim2SimParams | dict | None = None, seed: int = 0, threads: int = 1, progress: bool = True) -> SyntheticSet:
    """Render the z~2 sim2sim universe: PRISTINE images (pixel-integrated, before PSF), nJy/pixel,
    bands (F814W, F356W, F160W).  Use :func:`observe_sim2sim` for the paper's source/target."""
    P = params if isinstance(params, Sim2SimParams) else Sim2SimParams.from_dict(params)
    seed = _check_seed(seed)
    labels = _make_labels(P.n_mergers, P.n_nonmergers, seed, _STREAM_SIM2SIM)
    images, catalog = _run("sim2sim", P, seed, labels, threads, progress, np.float32)
    sigma = P.sky_sigma()
    meta = {
        "dataset": "sim2sim",
        "domain": "pristine (before PSF)",
        "units": "nJy/pixel",
        "ab_zeropoint_njy": AB_ZEROPOINT_NJY,
        "stage": "pixel-integrated light, no PSF, no noise; observe_sim2sim() gives the PSF-convolved source and noisy target",
        "filters": list(P.filters),
        "pixel_scale_arcsec": P.pixel_scale,
        "kpc_per_pixel": P.kpc_per_pixel,
        "redshift": P.redshift,
        "psf_fwhm_arcsec": list(P.psf_fwhm_arcsec),
        "psf_model": "circular Gaussian (observe.convolve_psf)",
        "target_sky_sigma_njy": sigma.tolist(),
        "limiting_sb_mag_arcsec2": P.limiting_sb_mag,
        "limiting_sb_nsigma": P.limiting_sb_nsigma,
        "labels": {"1": "merger", "0": "non-merger"},
        "seed": seed,
        "generator": f"deepmerge_da.data.synthetic {GENERATOR_VERSION}",
        "catalog_codes": {"merger_type": list(_MERGER_TYPES), "morphology": list(_MORPHS)},
        "params": P.to_dict(),
    }
    return SyntheticSet(images, labels, _object_ids("sim2sim", seed, labels.size), tuple(P.filters), P.pixel_scale, meta, catalog)


def observe_sim2sim(sset: SyntheticSet, params: Sim2SimParams | dict | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) float32 arrays of the paper's sim2sim pair from pristine images.

    source = PSF-convolved pristine images; target = source + Gaussian sky noise with the per-band
    sigma of :meth:`Sim2SimParams.sky_sigma` (5 sigma = 25 mag/arcsec^2).  The noise of each object
    is seeded by (seed, object_id), so it does not depend on which other objects are in the set.
    """
    P = params if isinstance(params, Sim2SimParams) else Sim2SimParams.from_dict(params)
    seed = _check_seed(seed)
    source = observe.convolve_psf(sset.images, P.psf_fwhm_arcsec, P.pixel_scale)
    sigma = P.sky_sigma()
    target = np.empty_like(source)
    for i, oid in enumerate(np.asarray(sset.object_id)):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM_SIM2SIM_NOISE, int(oid))))
        target[i] = observe.add_sky_noise(source[i], sigma, rng)
    return source, target


def render_sim2real_source(params: Sim2RealParams | dict | None = None, seed: int = 0, threads: int = 1, progress: bool = True) -> SyntheticSet:
    """Render Illustris-like z~0 SDSS mocks: (g, r, i), 0.24 kpc/px, dust, 1 kpc Gaussian PSF and
    Gaussian noise (average S/N 25), float32 nJy/pixel; post-mergers (label 1) vs non-mergers."""
    P = params if isinstance(params, Sim2RealParams) else Sim2RealParams.from_dict(params)
    seed = _check_seed(seed)
    n_m = P.source_n_mergers
    labels = _make_labels(n_m, P.source_n_objects - n_m, seed, _STREAM_SIM2REAL_SOURCE)
    images, catalog = _run("sim2real_source", P, seed, labels, threads, progress, np.float32)
    meta = {
        "dataset": "sim2real",
        "domain": "source (simulated z~0 mocks)",
        "units": "nJy/pixel",
        "ab_zeropoint_njy": AB_ZEROPOINT_NJY,
        "filters": list(P.source_filters),
        "pixel_scale_arcsec": P.source_pixel_scale,
        "pixel_scale_kpc": P.source_pixel_scale_kpc,
        "redshift": P.source_redshift,
        "psf_fwhm_kpc": P.source_psf_fwhm_kpc,
        "psf_fwhm_arcsec": P.source_psf_fwhm_kpc / P.source_kpc_per_arcsec,
        "noise": "Gaussian, per object and band: sigma = mean body signal within snr_aperture_re*Re / S/N",
        "snr_median": P.source_snr,
        "labels": {"1": "post-merger", "0": "non-merger"},
        "seed": seed,
        "generator": f"deepmerge_da.data.synthetic {GENERATOR_VERSION}",
        "catalog_codes": {"merger_type": list(_MERGER_TYPES), "morphology": list(_MORPHS)},
        "params": P.to_dict(),
    }
    return SyntheticSet(images, labels, _object_ids("sim2real_source", seed, labels.size), tuple(P.source_filters),
                        P.source_pixel_scale, meta, catalog)


def render_sim2real_target(params: Sim2RealParams | dict | None = None, seed: int = 0, threads: int = 1, progress: bool = True) -> SyntheticSet:
    """Render SDSS-like observed cutouts of *different* objects: 8-bit Lupton asinh RGB (R,G,B =
    i,r,g) at 0.396\"/px, JPEG-compressed and decoded, uint8 (N, 3, H, W); field stars and
    neighbours in both classes; post-mergers mostly show two bright cores."""
    P = params if isinstance(params, Sim2RealParams) else Sim2RealParams.from_dict(params)
    seed = _check_seed(seed)
    n_m = P.target_n_mergers
    labels = _make_labels(n_m, P.target_n_objects - n_m, seed, _STREAM_SIM2REAL_TARGET)
    images, catalog = _run("sim2real_target", P, seed, labels, threads, progress, np.uint8)
    sigma = observe.point_source_depth_sigma(P.target_depth_mag, P.target_psf_fwhm_arcsec, P.target_pixel_scale)
    meta = {
        "dataset": "sim2real",
        "domain": "target (SDSS-like observed)",
        "units": "uint8 JPEG-decoded Lupton asinh RGB of nanomaggy images",
        "channels": "R,G,B = i,r,g",
        "filters": list(P.target_filters),
        "pixel_scale_arcsec": P.target_pixel_scale,
        "psf_fwhm_arcsec": list(P.target_psf_fwhm_arcsec),
        "sky_sigma_njy": np.asarray(sigma).tolist(),
        "lupton": {"stretch": P.lupton_stretch, "Q": P.lupton_q, "minimum": P.lupton_minimum, "band_scales": list(P.lupton_band_scales)},
        "jpeg_quality": P.jpeg_quality,
        "labels": {"1": "post-merger", "0": "non-merger"},
        "seed": seed,
        "generator": f"deepmerge_da.data.synthetic {GENERATOR_VERSION}",
        "catalog_codes": {"merger_type": list(_MERGER_TYPES), "morphology": list(_MORPHS)},
        "params": P.to_dict(),
    }
    return SyntheticSet(images, labels, _object_ids("sim2real_target", seed, labels.size), tuple(P.target_filters),
                        P.target_pixel_scale, meta, catalog)
