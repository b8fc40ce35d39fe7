"""HDF5 files of the workflow: writing them atomically and reading them back.

Two kinds of file share one layout:

- *raw* sets (``results/data/{pair}/raw/{domain}.h5``): images as produced by a data source (synthetic,
  local cutouts, published arrays), any size, one row per object;
- *prepared* sets (``results/data/{pair}/{domain}.h5``): resized to the network's input, filters in the
  pair's order, augmented and balanced, with a ``split`` column (0 train, 1 val, 2 test) and the
  per-channel normalisation statistics of the training split in the attributes.

Datasets: ``images`` (N, C, H, W) float32, ``labels`` (N,) int8 with 1 = merger, ``object_id`` (N,) UTF-8
strings, optionally ``split`` (N,) int8 and ``augmentation`` (N,) UTF-8 (what was done to the original).
Attributes: ``filters``, ``pixel_scale`` (arcsec/px), ``units``, ``data_source``, ``config`` (JSON), and
for prepared sets ``channel_mean``/``channel_std``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from deepmerge_da.io.atomic import atomic_path

SPLITS = {"train": 0, "val": 1, "test": 2}
# What a prepared set (one with a ``split`` dataset) stores besides the images: its training statistics.
PREPARED_ATTRIBUTES = ("channel_mean", "channel_std")


class ImageSetError(ValueError):
    """An HDF5 image set cannot be read; the message names the file (and the dataset or attribute)."""


@dataclass
class ImageSet:
    images: np.ndarray
    labels: np.ndarray
    object_id: np.ndarray
    attrs: dict = field(default_factory=dict)
    split: np.ndarray | None = None
    augmentation: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.images)
        for name in ("labels", "object_id", "split", "augmentation"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows but images has {n}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def filters(self) -> list[str]:
        return list(self.attrs.get("filters", []))


def _attr_value(value):
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        return np.array(value, dtype=h5py.string_dtype())
    return value


def write_image_set(path: str | os.PathLike, data: ImageSet) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed at the end (never half-written)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("images", data=np.ascontiguousarray(data.images, dtype=np.float32),
                         chunks=(min(256, max(1, len(data))),) + data.images.shape[1:])
        f.create_dataset("labels", data=data.labels.astype(np.int8))
        f.create_dataset("object_id", data=data.object_id.astype(str).astype(object), dtype=h5py.string_dtype())
        if data.split is not None:
            f.create_dataset("split", data=data.split.astype(np.int8))
        if data.augmentation is not None:
            f.create_dataset("augmentation", data=data.augmentation.astype(str).astype(object),
                             dtype=h5py.string_dtype())
        for key, value in data.attrs.items():
            f.attrs[key] = _attr_value(value)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _read_dataset(f: h5py.File, path: Path, name: str, strings: bool = False) -> np.ndarray:
    """All of dataset ``name``; an unreadable one raises :class:`ImageSetError` naming the file and the dataset."""
    try:
        return f[name].asstr()[:].astype(str) if strings else f[name][:]
    except (OSError, ValueError) as exc:  # h5py: chunks past the end of a truncated file, undecodable strings
        raise ImageSetError(f"{path}: dataset {name!r} cannot be read ({_one_line(exc)})") from None


def _read_attrs(f: h5py.File, path: Path) -> dict:
    attrs = {}
    for key, value in f.attrs.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
            value = [v.decode() if isinstance(v, bytes) else str(v) for v in value]
        elif isinstance(value, bytes):
            value = value.decode()
        if key == "config" and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ImageSetError(f"{path}: attribute 'config' is not JSON ({exc})") from None
        attrs[key] = value
    return attrs


def read_image_set(path: str | os.PathLike, split: str | None = None) -> ImageSet:
    """Read an image set, optionally only one split (``train``, ``val`` or ``test``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image set {path} does not exist")
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    try:
        with h5py.File(path, "r") as f:
            for name in ("images", "labels", "object_id"):
                if name not in f:
                    raise ImageSetError(f"{path}: dataset {name!r} is missing")
            if split is not None and "split" not in f:
                raise ImageSetError(f"{path}: no 'split' dataset; is this a raw set?")
            attrs = _read_attrs(f, path)
            if "split" in f:
                for name in PREPARED_ATTRIBUTES:
                    if name not in attrs:
                        raise ImageSetError(f"{path}: attribute {name!r} is missing (a prepared set, one with a "
                                            "'split' dataset, stores its training statistics)")
            # One contiguous read per dataset, then a mask in memory: much faster than h5py's point selection.
            columns = {name: _read_dataset(f, path, name, strings=name in ("object_id", "augmentation"))
                       for name in ("images", "labels", "object_id", "split", "augmentation") if name in f}
    except OSError as exc:  # h5py: not HDF5, truncated, unreadable metadata
        raise ImageSetError(f"{path}: not a readable HDF5 image set ({_one_line(exc)})") from None
    try:
        data = ImageSet(np.asarray(columns["images"], dtype=np.float32), columns["labels"].astype(np.int64),
                        columns["object_id"], attrs, columns["split"].astype(np.int8) if "split" in columns else None,
                        columns.get("augmentation"))
    except ValueError as exc:  # datasets of different lengths
        raise ImageSetError(f"{path}: {exc}") from None
    if split is None:
        return data
    rows = data.split == SPLITS[split]
    return ImageSet(data.images[rows], data.labels[rows], data.object_id[rows], attrs, data.split[rows],
                    None if data.augmentation is None else data.augmentation[rows])
