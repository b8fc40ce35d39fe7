"""The authors' published, prepared image arrays -> our raw image sets (``results/data/{pair}/raw/{domain}.h5``).

Used when ``data.pairs.<pair>.source`` is ``published``; the files are downloaded (and their SHA-256
verified) by the ``fetch_published_images`` rule with :func:`deepmerge_da.data.http.fetch_file`.  Two forms:

* **DeepMerge II** (Ciprijanovic et al. 2021), Zenodo record doi:10.5281/zenodo.4507941
  (https://zenodo.org/records/4507941): NumPy ``.npy`` files, one of images (``*_X_*``) and one of labels
  (``*_y_*``) per domain -- ``SimSim_SOURCE_X_Illustris2_pristine.npy`` / ``SimSim_SOURCE_y_...`` and
  ``SimSim_TARGET_X_Illustris2_noisy.npy`` / ``SimSim_TARGET_y_...`` (sim2sim), ``SimReal_SOURCE_X_Illustris0.npy``
  and ``SimReal_TARGET_X_postmergers_SDSS.npy`` with their ``_y_`` files (sim2real).  Names as users of the
  record list them; we could not check them (nor the URLs) offline -- take them from the record page.
  -> :func:`npy_to_image_set`.
* **DeepMerge I** (Ciprijanovic et al. 2020), the MAST High Level Science Product ``deepmerge``
  (https://archive.stsci.edu/hlsp/deepmerge): FITS files with the images in HDU 0 and the labels in HDU 1
  (an image HDU, or a table whose label column is ``label``/``labels``/``y``/``merger``/``class``, else its
  first column).  -> :func:`fits_to_image_set`.

Images become float32 (N, C, H, W) whatever the stored layout: (N, C, H, W) and (N, H, W, C) are told apart
by where the ``len(filters)`` channels sit (:func:`detect_layout`; ``layout`` may force it) and the choice is
logged.  (N, H, W) arrays are one-channel images.  Values are kept as stored (``units`` says what they are).
Labels: 1 = merger, 0 = non-merger; (N,), (N, 1) and one-hot (N, 2) arrays (column 1 = merger) are accepted,
anything else is an error that names the file.  Object ids are ``pub-<index>`` (the row in the file) unless
the FITS label table has an ``object_id`` or ``id`` column; the source and target files of sim2sim list the
same objects in the same order, so they share ids -- and therefore the split (see :mod:`.preprocess`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from deepmerge_da.io.hdf5 import ImageSet, write_image_set

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "NCHW", "NHWC")
LABEL_COLUMNS = ("label", "labels", "y", "merger", "class")
ID_COLUMNS = ("object_id", "id")


class PublishedDataError(ValueError):
    """A published file does not hold what we expect; the message names the file."""


def detect_layout(shape: tuple[int, ...], n_channels: int | None = None, *, where: str = "images") -> str:
    """``"NCHW"`` or ``"NHWC"`` for a 4-d image array of ``shape``; raises when it cannot tell.

    With ``n_channels`` the channel axis is the one of that length (axis 1 or 3); when both are, the layout
    whose two other axes are the larger (the spatial ones) wins.  Without it, the channel axis is the
    axis 1 or 3 that is shorter than the two others.
    """
    if len(shape) != 4:
        raise PublishedDataError(f"{where}: expected a 4-d image array (N, C, H, W) or (N, H, W, C), got shape "
                                 f"{tuple(shape)}")
    _, a, b, c = shape
    if n_channels is not None:
        nchw, nhwc = a == n_channels, c == n_channels
        if nchw and nhwc:  # e.g. (N, 3, 3, 3): the spatial axes must be the larger ones
            nchw, nhwc = min(b, c) > a, min(a, b) > c
    else:
        nchw, nhwc = a < min(b, c), c < min(a, b)
    if nchw != nhwc:
        return "NCHW" if nchw else "NHWC"
    want = f"{n_channels} channels" if n_channels is not None else "a channel axis shorter than the image axes"
    raise PublishedDataError(f"{where}: cannot tell the layout of shape {tuple(shape)} (looking for {want} "
                             f"first (N, C, H, W) or last (N, H, W, C)); set the set's 'layout' and 'filters'")


def to_nchw(images: np.ndarray, n_channels: int | None = None, layout: str = "auto", *,
            where: str = "images") -> tuple[np.ndarray, str]:
    """float32 (N, C, H, W) from (N, C, H, W), (N, H, W, C) or (N, H, W); returns (array, layout found)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    arr = np.asarray(images)
    if arr.ndim not in (3, 4):
        raise PublishedDataError(f"{where}: expected images of shape (N, C, H, W), (N, H, W, C) or (N, H, W), "
                                 f"got {arr.shape}")
    if arr.ndim == 3:
        if n_channels not in (None, 1):
            raise PublishedDataError(f"{where}: shape {arr.shape} holds one-channel images but {n_channels} "
                                     f"filters are configured")
        found = "NHW"
        arr = arr[:, None]
    else:
        found = detect_layout(arr.shape, n_channels, where=where) if layout == "auto" else layout
        if found == "NHWC":
            arr = arr.transpose(0, 3, 1, 2)
        if n_channels is not None and arr.shape[1] != n_channels:
            raise PublishedDataError(f"{where}: layout {found} gives {arr.shape[1]} channels but {n_channels} "
                                     f"filters are configured (shape {images.shape})")
    how = "" if layout == "auto" else " (as configured)"
    log.info("%s: stored layout %s%s, shape %s -> (N, C, H, W) %s", where, found, how, tuple(np.shape(images)),
             arr.shape)
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise PublishedDataError(f"{where}: {int((~np.isfinite(out)).sum())} non-finite pixel values")
    return out, found


def to_labels(raw, n: int, *, where: str = "labels") -> np.ndarray:
    """int8 labels (1 = merger) from an (N,), (N, 1) or one-hot (N, 2) array of 0/1 values."""
    y = np.asarray(raw)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == 2:
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise PublishedDataError(f"{where}: an (N, 2) label array must be one-hot (one 1 per row)")
        log.info("%s: one-hot labels, column 1 taken as 'merger'", where)
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise PublishedDataError(f"{where}: expected labels of shape (N,), (N, 1) or (N, 2), got {y.shape}")
    if len(y) != n:
        raise PublishedDataError(f"{where}: {len(y)} labels for {n} images")
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        bad = sorted({str(v) for v in np.unique(y) if v not in (0, 1)})[:5] if y.dtype.kind in "biuf" else [
            str(y.dtype)]
        raise PublishedDataError(f"{where}: labels must be 0 (non-merger) or 1 (merger), found {', '.join(bad)}")
    return y.astype(np.int8)


def _attrs(files: list[Path], *, filters, pixel_scale, units, layout: str, extra: dict | None = None) -> dict:
    return {"filters": list(filters), "pixel_scale": float("nan") if pixel_scale is None else float(pixel_scale),
            "units": units, "data_source": "published arrays: " + ", ".join(p.name for p in files),
            "config": {"files": [str(p) for p in files], "stored_layout": layout, **(extra or {})}}


def npy_to_image_set(images_path: str | os.PathLike, labels_path: str | os.PathLike, *, filters: list[str],
                     pixel_scale: float | None = None, units: str = "as published", layout: str = "auto",
                     object_ids=None) -> ImageSet:
    """A raw :class:`ImageSet` from a ``.npy`` file of images and one of labels (DeepMerge II's Zenodo files)."""
    images_path, labels_path = Path(images_path), Path(labels_path)
    try:
        raw = np.load(images_path, mmap_mode="r", allow_pickle=False)
        y = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PublishedDataError(f"cannot read {images_path} / {labels_path} as NumPy arrays: {exc}") from exc
    images, found = to_nchw(raw, len(filters), layout, where=str(images_path))
    labels = to_labels(y, len(images), where=str(labels_path))
    ids = _ids(object_ids, len(images), str(images_path))
    return ImageSet(images, labels, ids, _attrs([images_path, labels_path], filters=filters,
                                                pixel_scale=pixel_scale, units=units, layout=found))


def fits_to_image_set(path: str | os.PathLike, *, filters: list[str], pixel_scale: float | None = None,
                      units: str = "as published", layout: str = "auto", object_ids=None) -> ImageSet:
    """A raw :class:`ImageSet` from a FITS file with images in HDU 0 and labels in HDU 1 (DeepMerge I's HLSP)."""
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            if len(hdul) < 2:
                raise PublishedDataError(f"{path}: expected images in HDU 0 and labels in HDU 1, found "
                                         f"{len(hdul)} HDU(s)")
            data = hdul[0].data
            if data is None:
                raise PublishedDataError(f"{path}: HDU 0 holds no image array")
            images, found = to_nchw(np.asarray(data).astype(np.float32), len(filters), layout,
                                    where=f"{path}[0]")
            hdu = hdul[1]
            file_ids = None
            if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
                names = list(hdu.columns.names)
                lower = {n.lower(): n for n in names}
                col = next((lower[c] for c in LABEL_COLUMNS if c in lower), names[0])
                raw_labels = np.asarray(hdu.data[col])
                idcol = next((lower[c] for c in ID_COLUMNS if c in lower and lower[c] != col), None)
                if idcol is not None:
                    file_ids = [str(v.decode() if isinstance(v, bytes) else v).strip() for v in hdu.data[idcol]]
                log.info("%s[1]: labels from table column %r%s", path, col,
                         f", object ids from {idcol!r}" if idcol else "")
            else:
                raw_labels = np.asarray(hdu.data)
            labels = to_labels(raw_labels, len(images), where=f"{path}[1]")
    except PublishedDataError:
        raise
    except OSError as exc:
        raise PublishedDataError(f"cannot read {path} as FITS: {exc}") from exc
    ids = _ids(object_ids if object_ids is not None else file_ids, len(images), str(path))
    return ImageSet(images, labels, ids, _attrs([path], filters=filters, pixel_scale=pixel_scale, units=units,
                                                layout=found))


def _ids(object_ids, n: int, where: str) -> np.ndarray:
    if object_ids is None:
        return np.array([f"pub-{i}" for i in range(n)])
    ids = np.asarray([str(o) for o in object_ids])
    if len(ids) != n:
        raise PublishedDataError(f"{where}: {len(ids)} object ids for {n} images")
    if len(set(ids.tolist())) != n:
        raise PublishedDataError(f"{where}: object ids are not unique")
    return ids


def import_published(*, path: str | os.PathLike, filters: list[str], images: str | None = None,
                     labels: str | None = None, fits: str | None = None, pixel_scale: float | None = None,
                     units: str = "as published", layout: str = "auto", what: str = "published set") -> ImageSet:
    """Convert one published set (``fits``, or ``images`` + ``labels``) and write it as a raw HDF5 set."""
    if (fits is None) == (images is None or labels is None) or (fits is not None and (images or labels)):
        raise ValueError("give either fits, or images and labels")
    if fits is not None:
        data = fits_to_image_set(fits, filters=filters, pixel_scale=pixel_scale, units=units, layout=layout)
    else:
        data = npy_to_image_set(images, labels, filters=filters, pixel_scale=pixel_scale, units=units,
                                layout=layout)
    log.info("%s: %d images (%d mergers) of shape %s, filters %s -> %s", what, len(data), int(data.labels.sum()),
             data.images.shape[1:], data.filters, path)
    write_image_set(path, data)
    return data
