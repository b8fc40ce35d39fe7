"""Physical parameters of the synthetic universe: :class:`Sim2SimParams` and :class:`Sim2RealParams`, frozen
dataclasses whose fields carry their unit and justification, built from plain dicts (config sections) with
checks that raise :class:`ParameterError`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepmerge_da.data import observe
from deepmerge_da.data.synthetic.cosmology import kpc_per_arcsec


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
            out[f.name] = {"default": _to_list(f.default), "unit": f.metadata.get("unit", ""),
                           "doc": f.metadata.get("doc", "")}
        return out

    def _check_ranges(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            is_range = f.name.endswith(("_range", "_kpc", "_sigma", "_fraction_range"))
            if (is_range and isinstance(v, tuple) and len(v) == 2
                    and all(isinstance(x, (int, float)) for x in v) and v[0] > v[1]):
                raise ParameterError(f.name, f"{f.name}: lower bound {v[0]} > upper bound {v[1]}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if ((f.name.endswith("_fraction") or f.name.endswith("_prob")) and isinstance(v, (int, float))
                    and not 0.0 <= v <= 1.0):
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
    pixel_scale: float = _p(0.06, "arcsec/pixel",
                            "Drizzled CANDELS/3D-HST WFC3 and ACS mosaics use 0.06\"/px; 75 px = 4.5\" = 38 kpc at "
                            "z=2.")
    filters: tuple = _p(("F814W", "F356W", "F160W"), "",
                        "Band order of the paper's three-filter images (ACS F814W, NIRCam F356W, WFC3 F160W).")
    psf_fwhm_arcsec: tuple = _p((0.09, 0.13, 0.18), "arcsec",
                                "Gaussian PSF FWHM per filter: ACS/WFC F814W ~0.09\", NIRCam F356W ~0.12-0.14\", "
                                "WFC3/IR F160W ~0.18\".")
    limiting_sb_mag: float = _p(25.0, "AB mag/arcsec^2",
                                "Limiting surface brightness of the target's sky noise (paper: 5 sigma = 25).")
    limiting_sb_nsigma: float = _p(5.0, "sigma", "Significance at which limiting_sb_mag is defined (paper: 5).")
    redshift: float = _p(2.0, "", "Redshift of the Illustris-1 snapshot used by the paper.")
    kpc_per_arcsec: float = _p(8.53, "kpc/arcsec",
                               "Proper scale at z=2 in the Illustris-1 cosmology (astropy FlatLambdaCDM H0=70.4, "
                               "Om0=0.2726); 0.512 kpc/px.")
    reference_band: int = _p(2, "index",
                             "Band in which magnitudes, flux ratios and colours are defined (F160W, rest-frame V at "
                             "z=2).")
    mag_range: tuple = _p((22.0, 24.5), "AB mag (F160W)",
                          "Total magnitude of the whole system (single galaxy, pair or remnant), uniform: M* ~ "
                          "1e10-1e11 Msun galaxies at z=2 have H ~ 22-25 (CANDELS); drawn for the system so that "
                          "total flux is no merger cue.")
    re_kpc_range: tuple = _p((1.0, 4.0), "kpc",
                             "Effective (half-light, circularised) radius of the (primary) galaxy, log-uniform; z~2 "
                             "star-forming galaxies have Re ~ 1-4 kpc (van der Wel et al. 2014).")
    morphology_probs: tuple = _p((0.40, 0.35, 0.25), "probability",
                                 "Probabilities of (clumpy disc, disc+bulge, spheroid) for single galaxies: z~2 "
                                 "massive galaxies are mostly clumpy star-forming discs, a quarter compact quiescent "
                                 "spheroids.")
    bulge_sersic_n: tuple = _p((2.0, 3.0, 4.0), "",
                               "Sersic indices drawn for bulges/spheroids (quantised so GalSim caches its Sersic "
                               "tables).")
    bulge_re_fraction_range: tuple = _p((0.2, 0.6), "Re", "Bulge half-light radius as a fraction of the disc's.")
    disc_min_axis_ratio: float = _p(0.3, "",
                                    "Intrinsic thickness of discs (edge-on axis ratio); z~2 discs are thick (q0 ~ "
                                    "0.25-0.4).")
    clump_flux_fraction_range: tuple = _p((0.1, 0.4), "fraction of disc light",
                                          "Light in star-forming clumps of clumpy discs (Guo et al. 2015: 10-40 % in "
                                          "UV).")
    n_clumps_range: tuple = _p((3, 15), "clumps",
                               "Number of clumps (galsim.RandomKnots positions, exponential distribution of the "
                               "disc's half-light radius).")
    clump_sigma_kpc_range: tuple = _p((0.2, 0.6), "kpc", "Gaussian size of a clump (~1 kpc FWHM at z~2).")
    colour_bulge: tuple = _p((2.2, -0.8, 0.0), "AB mag rel. F160W",
                             "Old stars: F814W-F160W ~ 2.2 (rest UV-V), F356W-F160W ~ -0.8 (rest J brighter).")
    colour_disc: tuple = _p((1.0, -0.35, 0.0), "AB mag rel. F160W", "Dusty star-forming disc colours at z~2.")
    colour_clump: tuple = _p((0.3, 0.05, 0.0), "AB mag rel. F160W", "Young clumps: nearly flat f_nu, blue.")
    colour_tidal: tuple = _p((0.8, -0.3, 0.0), "AB mag rel. F160W",
                             "Tidal debris: stripped disc stars, disc-like colours.")
    colour_scatter_mag: float = _p(0.15, "mag", "Per-galaxy Gaussian scatter of all colours (each non-reference band).")
    merger_past_fraction: float = _p(0.5, "fraction of mergers",
                                     "Past (remnant) vs future (pair) mergers: the paper's 0.5 Gyr window is centred "
                                     "on the snapshot.")
    flux_ratio_range: tuple = _p((1.0, 10.0), "",
                                 "Flux (~stellar-mass) ratio of a future-merger pair, log-uniform: the paper's "
                                 "major-merger criterion is up to 10:1.")
    separation_min_kpc: float = _p(2.0, "kpc", "Smallest projected separation of a pair (~2 F160W FWHM).")
    separation_max_re: float = _p(3.0, "Re of primary",
                                  "Largest projected separation, in primary effective radii (pairs within the 0.5 Gyr "
                                  "window are close).")
    double_nucleus_fraction: float = _p(0.6, "fraction of past mergers",
                                        "Remnants showing a resolved, offset second nucleus.")
    double_nucleus_offset_kpc: tuple = _p((1.0, 3.0), "kpc",
                                          "Offset of the second nucleus (resolved at F160W: FWHM 1.5 kpc).")
    double_nucleus_flux_fraction: tuple = _p((0.08, 0.35), "fraction of system flux", "Light in the second nucleus.")
    remnant_offset_re: tuple = _p((0.1, 0.35), "Re",
                                  "Lopsidedness of remnants: offset between the disc/envelope and the bulge.")
    remnant_bulge_boost: float = _p(0.2, "B/T", "Added bulge-to-total ratio of remnants (mergers build bulges).")
    tidal_fraction: float = _p(0.9, "fraction of mergers",
                               "Mergers that show tidal features (set 0 for the no-tidal-feature ablation; other "
                               "pixels stay identical).")
    tidal_peak_sigma: tuple = _p((0.3, 0.5), "target sky sigma",
                                 "Per-pixel peak of the tidal features (pristine, before PSF) in the band where they "
                                 "are most significant, in units of that band's target sky sigma, uniform per object: "
                                 "below the noise, so lost in the target (prototype: 0.4 sigma).")
    tidal_peak_sb_mag: float | None = _p(None, "AB mag/arcsec^2 (reference band)",
                                         "If set, overrides tidal_peak_sigma: peak surface brightness of the tidal "
                                         "features in the reference band.")
    tail_length_kpc: tuple = _p((6.0, 16.0), "kpc", "Length of tidal tails.")
    tail_width_kpc: tuple = _p((0.6, 1.5), "kpc",
                               "Gaussian half-width (sigma) of tails/bridges at their base (they broaden outwards).")
    bridge_fraction: float = _p(0.6, "fraction of future mergers", "Pairs with a stellar bridge.")
    shell_fraction: float = _p(0.6, "fraction of past mergers",
                               "Remnants with shells (2-4 interleaved arcs at 1.5-4 Re).")
    nonmerger_halo_fraction: float = _p(0.0, "fraction of non-mergers",
                                        "Non-mergers with a faint symmetric diffuse halo (as pristine Illustris "
                                        "images have); 0 = off.")
    nonmerger_halo_peak_sigma: tuple = _p((0.1, 0.3), "target sky sigma", "Peak of that halo, as tidal_peak_sigma.")
    neighbour_prob: float = _p(0.3, "probability",
                               "Chance of faint unrelated neighbours in the stamp (both classes, so 'two objects' is "
                               "no perfect cue).")
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
        return np.asarray(observe.sky_noise_sigma(self.limiting_sb_mag, self.pixel_scale, self.psf_fwhm_arcsec,
                                                  self.limiting_sb_nsigma))


@dataclass(frozen=True)
class Sim2RealParams(_ParamsMixin):
    """Parameters of the sim2real pair: ``source_*`` = Illustris z~0 SDSS-like mocks (g, r, i, floats),
    ``target_*`` = SDSS-like observed JPEG cutouts (i, r, g as R, G, B; uint8), different objects.

    Colours are AB magnitude offsets relative to r, in the respective filter order.
    """

    # ---------------- source: z ~ 0 simulated mocks (Snyder et al. 2015 style) ----------------
    source_n_objects: int = _p(2000, "objects", "Source images (paper: 5669 before augmentation).")
    source_merger_fraction: float = _p(0.5, "fraction",
                                       "Post-merger fraction; the paper's source had 44/5669 = 0.0078 (set that for "
                                       "fidelity; the workflow augments and balances).")
    image_size: int = _p(75, "pixels",
                         "Stamp side of both domains' outputs (real SDSS cutouts are 128 px and get resized "
                         "downstream).")
    source_filters: tuple = _p(("g", "r", "i"), "", "SDSS filters of the simulated mocks, in the paper's source order.")
    source_pixel_scale_kpc: float = _p(0.24, "kpc/pixel", "Re-binned constant physical scale of the mocks (paper).")
    source_redshift: float = _p(0.05, "",
                                "Redshift at which the mocks are 'observed' (paper: 1 kpc = 1\" at z=0.05); sets "
                                "fluxes and the arcsec pixel scale.")
    source_psf_fwhm_kpc: float = _p(1.0, "kpc", "Gaussian PSF FWHM, same in all bands (paper).")
    source_snr: float = _p(25.0, "",
                           "Median per-object S/N: the mean per-pixel S/N (signal/sigma) of the galaxy body in a "
                           "circular aperture of radius snr_aperture_re*Re, each band separately (paper: average S/N "
                           "= 25).")
    source_snr_scatter_dex: float = _p(0.1, "dex", "Log-normal scatter of the per-object S/N.")
    snr_aperture_re: float = _p(2.0, "Re", "Aperture radius of the S/N definition.")
    source_mag_r_range: tuple = _p((14.0, 17.0), "AB mag (r)",
                                   "Apparent r magnitude of the system (sets the nJy scale; the noise follows the "
                                   "S/N).")
    source_re_kpc: tuple = _p((1.5, 4.0), "kpc",
                              "Effective radius (log-uniform), framed so that 2 Re fits in the 18 kpc stamp.")
    source_morphology_probs: tuple = _p((0.45, 0.30, 0.25), "probability",
                                        "(spiral disc+bulge+arms, disc+bulge, spheroid) of z~0 massive galaxies.")
    source_double_nucleus_fraction: float = _p(0.3, "fraction of post-mergers",
                                               "Source remnants with a second core: the simulated post-mergers show a "
                                               "greater variety than SDSS ones (paper Sec. 4.2.2).")
    source_double_nucleus_offset_kpc: tuple = _p((0.7, 3.0), "kpc", "Offset of that second core.")
    source_double_nucleus_flux_fraction: tuple = _p((0.1, 0.35), "fraction of system flux",
                                                    "Light in that second core (uniform).")
    source_tidal_peak_sigma: tuple = _p((1.0, 3.0), "source noise sigma",
                                        "Peak of tidal features (pristine) in units of the object's noise sigma in "
                                        "the most significant band: visible but faint.")
    source_neighbour_prob: float = _p(0.1, "probability",
                                      "Neighbours in the simulated stamps (the mocks image one subhalo's "
                                      "surroundings).")
    # ---------------- source rendered as SkyServer renders real cutouts (source_rendering: skyserver) ----------
    source_rendering: str = _p("mock", "",
                               "How the source is observed: 'mock' (the paper's: floats in nJy at "
                               "source_pixel_scale_kpc, 1 kpc PSF, noise for the S/N) or 'skyserver' (as the real "
                               "cutouts: a source_cutout_pixels stamp at target_pixel_scale for a redshift drawn from "
                               "source_redshift_range, seeing, SDSS depth and field stars as the target, Lupton asinh "
                               "8-bit RGB, JPEG (jpeg_quality), Lanczos-resized to image_size; 8-bit counts in "
                               "(g, r, i) order). The galaxies are drawn alike in both; the source_* knobs below "
                               "apply to 'skyserver' only.")
    source_redshift_range: tuple = _p((0.02, 0.09), "",
                                      "Redshift (uniform) at which a galaxy is observed, setting its angular size "
                                      "(Illustris-1 cosmology); Darg et al. / Galaxy Zoo: 0.005 < z < 0.1.")
    source_cutout_pixels: int = _p(128, "pixels",
                                   "Side of the SkyServer cutout at target_pixel_scale (128 px = 50.7\") before the "
                                   "Lanczos resize to image_size, as the real cutouts are read.")
    source_seeing_fwhm_arcsec: tuple = _p((1.5, 1.4, 1.3), "arcsec (g, r, i)",
                                          "Median Gaussian seeing FWHM (SDSS median ~1.4\" in r, worse in bluer "
                                          "bands).")
    source_seeing_scatter_dex: float = _p(0.08, "dex",
                                          "Log-normal scatter of the seeing, one factor for all bands (SDSS seeing "
                                          "spans ~1.0-2.0\").")
    source_depth_mag: tuple = _p((22.2, 22.2, 21.3), "AB mag (g, r, i), 5 sigma point source",
                                 "SDSS depth that sets the per-pixel sky noise (as target_depth_mag).")
    source_star_mean: float = _p(1.75, "stars per cutout",
                                 "Poisson mean of field stars (target_star_mean's density over the 50.7\" "
                                 "cutout); magnitudes as target_star_mag_range.")
    source_lupton_stretch: float = _p(0.5, "nanomaggies", "Linear range of the asinh stretch (as lupton_stretch).")
    source_lupton_q: float = _p(10.0, "", "Asinh softening parameter Q (as lupton_q).")
    source_lupton_band_scales: tuple = _p((1.0, 1.5, 2.5), "",
                                          "Multipliers of the (i, r, g) nanomaggy images before the stretch (as "
                                          "lupton_band_scales).")
    # ---------------- shared galaxy-population knobs ----------------
    bulge_sersic_n: tuple = _p((2.0, 3.0, 4.0), "", "Bulge/spheroid Sersic indices (quantised).")
    bulge_re_fraction_range: tuple = _p((0.15, 0.5), "Re", "Bulge half-light radius relative to the disc.")
    disc_min_axis_ratio: float = _p(0.15, "", "Edge-on axis ratio of z~0 thin discs.")
    arm_flux_fraction_range: tuple = _p((0.05, 0.25), "fraction of disc light",
                                        "Light in spiral arms (2 log-spiral arms, pitch 12-25 deg).")
    colour_bulge_gri: tuple = _p((0.75, 0.0, -0.40), "AB mag rel. r (g, r, i)", "Red sequence: g-r ~ 0.75, r-i ~ 0.40.")
    colour_disc_gri: tuple = _p((0.45, 0.0, -0.22), "AB mag rel. r (g, r, i)", "Star-forming discs before dust.")
    colour_arm_gri: tuple = _p((0.15, 0.0, -0.05), "AB mag rel. r (g, r, i)", "Young arm populations.")
    colour_tidal_gri: tuple = _p((0.55, 0.0, -0.28), "AB mag rel. r (g, r, i)", "Tidal debris.")
    colour_scatter_mag: float = _p(0.08, "mag", "Per-galaxy colour scatter.")
    dust_tau_v_range: tuple = _p((0.1, 1.0), "optical depth",
                                 "Face-on central V-band optical depth of the dust slab (screen following the disc "
                                 "light, scaled by 1/q with inclination; Snyder et al. 2015 / Nelson et al. 2018 "
                                 "slab).")
    dust_band_ratio_gri: tuple = _p((1.07, 0.74, 0.55), "A_band/A_V",
                                    "Extinction-law ratios for SDSS g, r, i (Schlafly & Finkbeiner 2011, R_V=3.1): "
                                    "dust reddens and dims discs, most in g.")
    remnant_offset_re: tuple = _p((0.1, 0.35), "Re", "Lopsidedness of remnants (envelope vs bulge offset).")
    tail_length_kpc: tuple = _p((6.0, 20.0), "kpc", "Tidal-tail lengths at z~0.")
    tail_width_kpc: tuple = _p((0.6, 1.5), "kpc", "Tidal-tail Gaussian width (sigma) at the base.")
    shell_fraction: float = _p(0.5, "fraction of post-mergers", "Remnants with shells.")
    # ---------------- target: SDSS-like observed cutouts ----------------
    target_n_objects: int = _p(2000, "objects", "Target images (paper: 3000 + 3000 after augmenting 310 post-mergers).")
    target_merger_fraction: float = _p(0.5, "fraction", "Post-merger fraction of the target.")
    target_filters: tuple = _p(("i", "r", "g"), "", "SDSS cutout-server colour images: R, G, B = i, r, g.")
    target_pixel_scale: float = _p(0.396, "arcsec/pixel", "SDSS imaging camera pixel scale.")
    target_redshift_range: tuple = _p((0.02, 0.09), "",
                                      "Galaxy Zoo / Darg et al. (2010) mergers lie at 0.005 < z < 0.1.")
    target_abs_mag_r_range: tuple = _p((-22.5, -20.0), "AB mag (r)",
                                       "Absolute magnitudes of the SDSS main sample at these redshifts (r < 17.77).")
    target_mag_r_limit: float = _p(17.77, "AB mag (r)",
                                   "SDSS main-galaxy-sample limit (Galaxy Zoo parent sample): the absolute-magnitude "
                                   "draw is truncated so that r <= this.")
    target_re_kpc: tuple = _p((1.5, 6.0), "kpc", "Effective radii of real z~0.05 galaxies (log-uniform).")
    target_max_re_frac: float = _p(0.16, "image size",
                                   "Cap of the angular Re (pixels) as a fraction of the stamp side, standing in for "
                                   "the cutout framing of real surveys (Galaxy Zoo cutouts scale with the galaxy's "
                                   "Petrosian radius).")
    target_psf_fwhm_arcsec: tuple = _p((1.3, 1.4, 1.5), "arcsec (i, r, g)",
                                       "SDSS median seeing ~1.3-1.5\", worse in bluer bands.")
    target_depth_mag: tuple = _p((21.3, 22.2, 22.2), "AB mag (i, r, g), 5 sigma point source",
                                 "SDSS 95 % completeness limits for point sources; sets the per-pixel noise with "
                                 "optimal PSF photometry.")
    target_double_core_fraction: float = _p(0.85, "fraction of post-mergers",
                                            "SDSS post-mergers 'clearly exhibit two bright galaxy cores' (paper Sec. "
                                            "4.2.2).")
    target_core_separation_kpc: tuple = _p((2.0, 9.0), "kpc",
                                           "Separation of the two cores (resolved at 1.4\" seeing ~ 1.4 kpc at "
                                           "z=0.05).")
    target_core_flux_ratio: tuple = _p((1.0, 4.0), "", "Flux ratio of the two cores (log-uniform).")
    target_tidal_peak_sigma: tuple = _p((1.0, 5.0), "target noise sigma",
                                        "Peak of the tidal features in units of the target noise (visual Galaxy Zoo "
                                        "mergers need visible disturbances).")
    target_neighbour_prob: float = _p(0.4, "probability", "Neighbouring galaxies in SDSS cutouts (both classes).")
    target_star_mean: float = _p(0.6, "stars per stamp",
                                 "Poisson mean of field stars in a 30\" stamp at high latitude (~2000 stars/deg^2 to "
                                 "r=21).")
    target_star_mag_range: tuple = _p((13.0, 21.0), "AB mag (r)",
                                      "Star magnitudes (drawn with dN/dm ~ 10^(0.2 m)); bright stars saturate the "
                                      "8-bit stretch.")
    lupton_stretch: float = _p(0.5, "nanomaggies", "Linear range of the asinh stretch (astropy's SDSS example).")
    lupton_q: float = _p(10.0, "", "Asinh softening parameter Q (astropy's SDSS example).")
    lupton_minimum: float = _p(0.0, "nanomaggies", "Black level (SDSS frames are sky-subtracted).")
    lupton_band_scales: tuple = _p((1.0, 1.5, 2.5), "",
                                   "Multipliers of the (i, r, g) nanomaggy images before the stretch: colour balance "
                                   "that boosts g and r relative to i, as SDSS-style composites do (astrometry.net's "
                                   "sdss_rgb uses i:r:g = 1:1.5:2.5), so typical galaxies look yellow-white rather "
                                   "than red.")
    jpeg_quality: int = _p(75, "", "JPEG quality of the cutouts (Pillow).")

    def __post_init__(self):
        for name in ("source_n_objects", "target_n_objects"):
            if getattr(self, name) < 1:
                raise ParameterError(name, f"{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 16:
            raise ParameterError("image_size", f"image_size must be >= 16, got {self.image_size}")
        if self.source_cutout_pixels < 16:
            raise ParameterError("source_cutout_pixels", f"source_cutout_pixels must be >= 16, got "
                                                         f"{self.source_cutout_pixels}")
        if self.source_rendering not in ("mock", "skyserver"):
            raise ParameterError("source_rendering", f"source_rendering must be 'mock' or 'skyserver', got "
                                                     f"{self.source_rendering!r}")
        for name in ("source_filters", "target_filters", "target_psf_fwhm_arcsec", "target_depth_mag",
                     "source_seeing_fwhm_arcsec", "source_depth_mag", "source_lupton_band_scales",
                     "colour_bulge_gri", "colour_disc_gri", "colour_arm_gri", "colour_tidal_gri", "dust_band_ratio_gri",
                     "lupton_band_scales"):
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
