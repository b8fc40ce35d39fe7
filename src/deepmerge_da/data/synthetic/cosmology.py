"""Cosmology of the synthetic universe: Illustris-1 angular scales, distance moduli and cosmic times (astropy)."""

from __future__ import annotations

import functools

import numpy as np

#: Illustris-1 cosmology (WMAP9-like), used for angular scales and distance moduli.
ILLUSTRIS_COSMOLOGY = {"H0": 70.4, "Om0": 0.2726, "Ob0": 0.0456}


@functools.lru_cache(maxsize=1)
def _cosmology():
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(**ILLUSTRIS_COSMOLOGY)


def kpc_per_arcsec(z):
    """Proper kpc per arcsec at redshift ``z`` in the Illustris-1 cosmology (astropy)."""
    import astropy.units as u

    val = _cosmology().kpc_proper_per_arcmin(z).to(u.kpc / u.arcsec).value
    return float(val) if np.ndim(val) == 0 else val


def age_gyr(z):
    """Cosmic time (Gyr since the Big Bang) at redshift ``z`` in the Illustris-1 cosmology (astropy)."""
    val = _cosmology().age(z).value
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
