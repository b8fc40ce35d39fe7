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

from .atomic import atomic_path

SPLITS = {"train": 0, "val": 1, "test": 2}


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


def _read_attrs(f: h5py.File) -> dict:
    attrs = {}
    for key, value in f.attrs.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
            value = [v.decode() if isinstance(v, bytes) else str(v) for v in value]
        elif isinstance(value, bytes):
            value = value.decode()
        if key == "config" and isinstance(value, str):
            value = json.loads(value)
        attrs[key] = value
    return attrs


def read_image_set(path: str | os.PathLike, split: str | None = None) -> ImageSet:
    """Read an image set, optionally only one split (``train``, ``val`` or ``test``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image set {path} does not exist")
    with h5py.File(path, "r") as f:
        for name in ("images", "labels", "object_id"):
            if name not in f:
                raise ValueError(f"{path}: dataset {name!r} is missing")
        if split is not None:
            if "split" not in f:
                raise ValueError(f"{path}: no 'split' dataset; is this a raw set?")
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
            rows = f["split"][:] == SPLITS[split]
        else:
            rows = np.ones(len(f["labels"]), dtype=bool)
        # One contiguous read, then a mask in memory: much faster than h5py's point selection.
        data = ImageSet(
            images=np.asarray(f["images"][:], dtype=np.float32)[rows],
            labels=f["labels"][:].astype(np.int64)[rows],
            object_id=f["object_id"].asstr()[:].astype(str)[rows],
            attrs=_read_attrs(f),
            split=f["split"][:].astype(np.int8)[rows] if "split" in f else None,
            augmentation=f["augmentation"].asstr()[:].astype(str)[rows] if "augmentation" in f else None,
        )
    return data
