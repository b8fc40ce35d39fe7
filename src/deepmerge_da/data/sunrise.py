"""SUNRISE broadband FITS files of the Illustris image pipeline: validation and reading.

The layout read here is that of the Illustris-1 "stellar mocks" (Torrey et al. 2015, MNRAS 447, 2753: SUNRISE
images of the z = 0 galaxies, several cameras per galaxy), as the loaders of its authors' ``sunpy`` package read
it: the HDU ``FILTERS``, a table whose first column (``filter``) names the bands and whose column ``lambda_eff``
is their effective wavelength in metres; for each camera ``i`` the HDU ``CAMERA<i>-BROADBAND-NONSCATTER``, a cube
(n_filters, npix, npix) of the surface brightness L_lambda in W/m/m^2/sr in the order of the FILTERS table, and
``CAMERA<i>-PARAMETERS``, whose header keyword ``linear_fov`` is the side of the field of view in kpc.
(We could not check this layout against a file of the API offline; :func:`check_sunrise_fits` names what a file
lacks, so a different one shows up in the fetch manifest.)

:func:`check_sunrise_fits` validates a file -- complete (not truncated), the filters and cameras asked for present,
square cubes of finite values -- and is the one check that the fetcher and the converter share;
:func:`read_views` returns the cameras' images in the bands asked for, with their pixel size.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: FITS files are made of 2880-byte blocks.
FITS_BLOCK = 2880
#: Speed of light (m/s): L_lambda -> L_nu.
C_M_PER_S = 299_792_458.0


def camera_hdu(camera: int) -> str:
    return f"CAMERA{int(camera)}-BROADBAND-NONSCATTER"


def camera_parameters_hdu(camera: int) -> str:
    return f"CAMERA{int(camera)}-PARAMETERS"


class SunriseError(ValueError):
    """A SUNRISE file is unusable; the message says why (the reason recorded in the fetch manifest)."""


@dataclass
class SunriseViews:
    """The camera views of one galaxy: ``images`` (n_cameras, n_bands, npix, npix) of the surface brightness
    I_nu in Jy/sr, in the order of ``bands`` and ``cameras``, and the pixel side ``pixel_kpc``."""

    images: np.ndarray
    bands: list[str]
    cameras: list[int]
    pixel_kpc: float


def _band_names(hdul) -> list[str]:
    return [str(name).replace(" ", "") for name in hdul["FILTERS"].data.field(0)]


def _open_checked(path: Path, bands: list[str], cameras: list[int]):
    """Open ``path`` and check its structure; returns the open HDUList (the caller closes it)."""
    from astropy.io import fits

    size = path.stat().st_size
    if size == 0:
        raise SunriseError("empty file")
    with open(path, "rb") as fh:
        if fh.read(9) != b"SIMPLE  =":
            raise SunriseError("not a FITS file")
    if size % FITS_BLOCK:
        raise SunriseError(f"truncated fits ({size} bytes, not a whole number of {FITS_BLOCK}-byte blocks)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns of a truncated last HDU and drops it: checked below
        try:
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
        except OSError as exc:
            raise SunriseError(f"not a readable FITS file ({' '.join(str(exc).split())})") from None
    try:
        last = hdul.fileinfo(len(hdul) - 1)
        if last["datLoc"] + last["datSpan"] != size:
            raise SunriseError("truncated fits (its HDUs end before the file does)")
        names = {hdu.name for hdu in hdul}
        if "FILTERS" not in names:
            raise SunriseError("no FILTERS table")
        have = _band_names(hdul)
        missing = [b for b in bands if b not in have]
        if missing:
            raise SunriseError(f"missing filter {', '.join(missing)} (the file has: {', '.join(have)})")
        for camera in cameras:
            for name in (camera_hdu(camera), camera_parameters_hdu(camera)):
                if name not in names:
                    raise SunriseError(f"missing camera {camera} (no HDU {name})")
        return hdul
    except BaseException:
        hdul.close()
        raise


def _cube(hdul, camera: int, n_bands: int) -> np.ndarray:
    cube = hdul[camera_hdu(camera)].data
    if cube is None or cube.ndim != 3 or cube.shape[0] != n_bands or cube.shape[1] != cube.shape[2] \
            or cube.shape[1] < 2:
        shape = None if cube is None else cube.shape
        raise SunriseError(f"camera {camera}: image of shape {shape}, expected ({n_bands}, npix, npix)")
    return cube


def _pixel_kpc(hdul, camera: int, npix: int) -> float:
    fov = hdul[camera_parameters_hdu(camera)].header.get("linear_fov")
    if not isinstance(fov, (int, float)) or not np.isfinite(fov) or fov <= 0:
        raise SunriseError(f"camera {camera}: no positive linear_fov (kpc) in {camera_parameters_hdu(camera)}")
    return float(fov) / npix


def read_views(path: str | os.PathLike, bands: list[str], cameras: list[int]) -> SunriseViews:
    """The ``cameras``' images of ``bands`` (FILTERS names) as I_nu in Jy/sr; raises :class:`SunriseError`."""
    path = Path(path)
    hdul = _open_checked(path, bands, cameras)
    with hdul:
        have = _band_names(hdul)
        index = [have.index(b) for b in bands]
        lambda_eff = np.asarray(hdul["FILTERS"].data["lambda_eff"], dtype=np.float64)[index]
        if not (np.isfinite(lambda_eff).all() and (lambda_eff > 0).all()):
            raise SunriseError(f"non-positive lambda_eff of {', '.join(bands)}")
        # L_nu = L_lambda lambda^2 / c (per Hz), 1 Jy = 1e-26 W/m^2/Hz
        to_jy = lambda_eff ** 2 / C_M_PER_S * 1e26
        images, pixel_kpc = [], None
        for camera in cameras:
            cube = _cube(hdul, camera, len(have))[index].astype(np.float64)
            if not np.isfinite(cube).all():
                raise SunriseError(f"camera {camera}: non-finite pixel values")
            scale = _pixel_kpc(hdul, camera, cube.shape[-1])
            if pixel_kpc is None:
                pixel_kpc, shape = scale, cube.shape
            elif cube.shape != shape or not np.isclose(scale, pixel_kpc):
                raise SunriseError(f"camera {camera}: shape {cube.shape} and pixel {scale:g} kpc differ from camera "
                                   f"{cameras[0]}'s {shape} and {pixel_kpc:g} kpc")
            images.append(cube * to_jy[:, None, None])
    return SunriseViews(np.stack(images), list(bands), list(cameras), pixel_kpc)


def check_sunrise_fits(path: str | os.PathLike, bands: list[str], cameras: list[int]) -> str | None:
    """None when ``path`` is a complete SUNRISE file with ``bands`` and ``cameras`` and valid images, else why."""
    try:
        read_views(path, bands, cameras)
    except SunriseError as exc:
        return str(exc)
    return None
