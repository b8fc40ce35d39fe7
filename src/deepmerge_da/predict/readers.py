"""Reading one image of each kind into a (C, H, W) array (:func:`read_image`).

* FITS (``.fits``, ``.fit``, ``.fts``, optionally ``.gz``): either one image HDU holding a cube of planes
  (C, H, W) -- whose planes are named by header keywords ``FILTER1``, ``FILTER2``, ... when present, else
  by ``filters`` (default: the model's filters, in the model's order) -- or one 2-D image HDU per filter,
  each named by its ``FILTER`` header keyword (``filter_keyword``; ``EXTNAME`` when it has none). The
  planes the model needs are picked by name (case-insensitive) and put in the model's order; a missing
  one is an error naming the file, the filters needed and those found.
* JPEG / PNG: 8-bit RGB, read exactly as the SDSS import does (:mod:`deepmerge_da.data.sdss_cutouts`): Pillow
  decodes the file as RGB, whose channels are the SDSS i, r, g bands, and the pixel values stay 8-bit
  counts (0..255) as float32. JPEGs go through the import's own check (:func:`deepmerge_da.data.jpeg.check_jpeg`):
  empty, truncated, corrupt, non-RGB and blank files are rejected with its reason.
* NPY: one image, (C, H, W) or (H, W, C) (told apart by the model's channel count), planes named as for
  a FITS cube without ``FILTERn`` keywords.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from deepmerge_da.data.jpeg import check_jpeg_file, is_blank
from deepmerge_da.data.sdss_cutouts import FILTERS as JPEG_FILTERS
from deepmerge_da.predict.inputs import input_kind


def _jpeg_array(path: Path) -> np.ndarray:
    chk = check_jpeg_file(path, None, keep_image=True)
    if not chk.ok:
        raise ValueError(f"{path}: {chk.reason}")
    return np.asarray(chk.image, dtype=np.uint8).transpose(2, 0, 1)


def _png_array(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            if im.format != "PNG":
                raise ValueError(f"{path}: not a PNG (Pillow reads it as {im.format})")
            if im.mode == "P":
                im = im.convert("RGBA")
            if im.mode in ("RGBA", "LA"):  # drop the alpha channel
                im = im.convert(im.mode[:-1])
            if im.mode not in ("RGB", "L"):
                raise ValueError(f"{path}: not an 8-bit RGB image (PNG mode {im.mode})")
            arr = np.asarray(im, dtype=np.uint8)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
        raise ValueError(f"{path}: unreadable PNG ({exc or type(exc).__name__})") from None
    if is_blank(arr):
        raise ValueError(f"{path}: blank image")
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _npy_array(path: Path, n_channels: int) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError/UnpicklingError
        raise ValueError(f"{path}: unreadable NPY file ({exc or type(exc).__name__})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: not a numeric array")
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{path}: an image must be (C, H, W) or (H, W, C), not an array of shape {arr.shape}")
    if arr.shape[0] == n_channels:
        return arr
    if arr.shape[-1] == n_channels:
        return np.moveaxis(arr, -1, 0)
    raise ValueError(f"{path}: the model needs {n_channels} channels but the array has shape {arr.shape} "
                     f"(neither its first nor its last axis has {n_channels} planes)")


def _header_name(header, keyword: str) -> str | None:
    value = header.get(keyword)
    return str(value).strip() if value is not None and str(value).strip() else None


def _fits_array(path: Path, need: Sequence[str], n_channels: int, filter_keyword: str
               ) -> tuple[np.ndarray, list | None]:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdus:
            planes = []
            for k, hdu in enumerate(hdus):
                if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) or hdu.data is None:
                    continue
                planes.append((k, hdu.header, np.asarray(hdu.data)))
    except Exception as exc:  # noqa: BLE001 - astropy raises OSError, ValueError, TypeError, ...
        raise ValueError(f"{path}: unreadable FITS file ({exc or type(exc).__name__})") from None
    if not planes:
        raise ValueError(f"{path}: no image data in any HDU")
    cubes = [p for p in planes if p[2].ndim == 3]
    if len(cubes) > 1:
        raise ValueError(f"{path}: {len(cubes)} HDUs hold a cube; give one (C, H, W) cube, or one 2-D image per HDU")
    if cubes:  # one cube: planes named FILTER1, FILTER2, ... or unnamed
        _, header, data = cubes[0]
        names = [_header_name(header, f"{filter_keyword}{i + 1}") for i in range(data.shape[0])]
        return data, (names if all(names) else None)
    if len(planes) == 1 and planes[0][2].ndim == 2:  # a single plane
        _, header, data = planes[0]
        name = _header_name(header, filter_keyword) or _header_name(header, "EXTNAME")
        return data[None], ([name] if name else None)
    images = [(k, h, d) for k, h, d in planes if d.ndim == 2]
    if len(images) != len(planes):
        shapes = ", ".join(f"HDU {k}: {d.shape}" for k, _, d in planes)
        raise ValueError(f"{path}: expected 2-D images, one per filter, or one (C, H, W) cube, found {shapes}")
    named = {}
    for k, header, data in images:
        name = _header_name(header, filter_keyword) or _header_name(header, "EXTNAME")
        if name is not None:
            named.setdefault(name.lower(), (name, k, data))
    found = [v[0] for v in named.values()]
    if not need:  # a model without filter names: the image HDUs in file order
        if len(images) != n_channels:
            raise ValueError(f"{path}: the model needs {n_channels} planes but the file has {len(images)} image HDUs")
        return np.stack([d for _, _, d in images]), None
    missing = [f for f in need if f.lower() not in named]
    if missing:
        have = f"filters {found}" if found else f"no {filter_keyword} (or EXTNAME) keyword"
        raise ValueError(f"{path}: the model needs filters {list(need)} but the file's {len(images)} image HDUs "
                         f"have {have}; missing {missing}")
    chosen = [named[f.lower()] for f in need]
    shapes = {d.shape for _, _, d in chosen}
    if len(shapes) != 1:
        raise ValueError(f"{path}: the planes of filters {list(need)} differ in shape: "
                         + ", ".join(f"{n}: {d.shape}" for n, _, d in chosen))
    return np.stack([d for _, _, d in chosen]), [n for n, _, _ in chosen]


def read_image(path: str | os.PathLike, kind: str | None = None, *, need: Sequence[str] = (),
               n_channels: int | None = None, filters: Sequence[str] | None = None,
               filter_keyword: str = "FILTER") -> tuple[np.ndarray, list[str] | None]:
    """One image as a (C, H, W) float32 array and its plane names (None: assumed to be in the model's order).

    ``need``: the filters the model needs, in its order (multi-extension FITS planes are picked by them);
    ``n_channels``: how many planes it needs (default ``len(need)`` or 3); ``filters``: the plane names of
    unnamed inputs (NPY, FITS cubes without ``FILTERn`` keywords). JPEG/PNG planes are SDSS (i, r, g).
    Raises :class:`ValueError` naming the file for anything unreadable or unusable.
    """
    path = Path(path)
    kind = kind or input_kind(path)
    need = list(need)
    n_channels = n_channels or len(need) or 3
    if not path.is_file():
        raise ValueError(f"{path}: missing file")
    if kind == "jpeg":
        arr, names = _jpeg_array(path), list(JPEG_FILTERS)
    elif kind == "png":
        arr = _png_array(path)
        names = list(JPEG_FILTERS) if arr.shape[0] == 3 else None
    elif kind == "npy":
        arr, names = _npy_array(path, n_channels), None
    elif kind == "fits":
        arr, names = _fits_array(path, need, n_channels, filter_keyword)
    else:
        raise ValueError(f"{path}: unsupported file type")
    if names is None and filters is not None:
        names = list(filters)
    arr = np.asarray(arr, dtype=np.float32)
    if min(arr.shape[1:]) < 2:
        raise ValueError(f"{path}: image of {arr.shape[1]}x{arr.shape[2]} pixels is too small")
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(f"{path}: {bad} pixels are not finite (NaN or inf)")
    return arr, names
