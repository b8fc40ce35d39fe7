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

Modules
-------
:mod:`~deepmerge_da.data.synthetic.cosmology` (Illustris-1 scales and distance moduli),
:mod:`~deepmerge_da.data.synthetic.parameters` (:class:`Sim2SimParams`, :class:`Sim2RealParams`),
:mod:`~deepmerge_da.data.synthetic.random_streams` (per-object random streams),
:mod:`~deepmerge_da.data.synthetic.rendering` (pixel-integrated Sersic and Gaussian templates),
:mod:`~deepmerge_da.data.synthetic.morphology` (galaxies, tidal features, neighbours),
:mod:`~deepmerge_da.data.synthetic.sim2sim` and :mod:`~deepmerge_da.data.synthetic.sim2real` (one object of each
set), :mod:`~deepmerge_da.data.synthetic.universe` (labels, ids, the process pool and the public entry points).
"""

from deepmerge_da.data.synthetic.cosmology import ILLUSTRIS_COSMOLOGY, distance_modulus, kpc_per_arcsec
from deepmerge_da.data.synthetic.parameters import Sim2RealParams, Sim2SimParams
from deepmerge_da.data.synthetic.rendering import render_gaussian_blobs, render_sersic_template
from deepmerge_da.data.synthetic.universe import (
    GENERATOR_VERSION,
    SyntheticSet,
    observe_sim2sim,
    render_sim2real_source,
    render_sim2real_target,
    render_sim2sim,
)

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
