"""Preprocessing of a raw image set into a prepared, split HDF5 set.

Steps, in order: filter reordering -> resize to the network input -> split by object id (70/10/20,
stratified by label) -> augmentation that balances the classes within each split -> per-channel
normalisation statistics of the training split.

Splitting happens *before* augmentation and by object id, so augmented copies of one galaxy never
straddle splits (the paper augments first, which lets rotated copies of a test galaxy into training).
The split of an object is a function of its id, label and the seed only, so the source and target
domains of a pair that share objects (sim2sim) share the split as well.
"""
from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from tqdm import tqdm

from deepmerge_da.io.hdf5 import SPLITS, ImageSet, read_image_set, write_image_set

log = logging.getLogger(__name__)

FIXED_AUGMENTATIONS = ("flip_vertical", "flip_horizontal", "rot90", "rot180")


def reorder_filters(data: ImageSet, order: list[str]) -> ImageSet:
    """Reorder the image channels to ``order`` (e.g. SDSS (g, r, i) -> (i, r, g) as the JPEG cutouts)."""
    have = data.filters
    if sorted(have) != sorted(order):
        raise ValueError(f"filters {have} cannot be reordered to {order}: the sets differ")
    index = [have.index(name) for name in order]
    attrs = dict(data.attrs, filters=list(order))
    return ImageSet(data.images[:, index], data.labels, data.object_id, attrs, data.split, data.augmentation)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize (N, C, H, W) images to size x size (bilinear, antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images.astype(np.float32, copy=False)
    out = F.interpolate(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)), size=(size, size),
                        mode="bilinear", align_corners=False, antialias=True)
    return out.numpy()


def _object_key(object_id: str, seed: int) -> int:
    # A stable hash: the order of objects depends on neither the input order nor Python's hash seed.
    return int.from_bytes(hashlib.sha256(f"{seed}:{object_id}".encode()).digest()[:8], "little")


def assign_splits(object_id: np.ndarray, labels: np.ndarray, fractions=(0.7, 0.1, 0.2), seed: int = 0) -> np.ndarray:
    """Split codes (0 train, 1 val, 2 test) per row, grouped by object id and stratified by label.

    Every row of one object gets the same split. Within each label the objects are ordered by a
    seeded hash of their id and cut at the cumulative fractions.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions.tolist()}")
    object_id = np.asarray(object_id).astype(str)
    split = np.empty(len(object_id), dtype=np.int8)
    object_label: dict[str, int] = {}
    for oid, label in zip(object_id, labels, strict=True):
        if object_label.setdefault(oid, int(label)) != int(label):
            raise ValueError(f"object {oid} appears with two labels")
    for label in sorted(set(object_label.values())):
        ids = sorted((o for o, lab in object_label.items() if lab == label), key=lambda o: _object_key(o, seed))
        cuts = np.round(np.cumsum(fractions)[:2] * len(ids)).astype(int)
        code = {oid: int(np.searchsorted(cuts, i, side="right")) for i, oid in enumerate(ids)}
        rows = np.flatnonzero(np.asarray(labels) == label)
        split[rows] = [code[o] for o in object_id[rows]]
    return split


def augment_image(image: np.ndarray, op: str, rng: np.random.Generator,
                  zoom_range=(0.8, 1.25)) -> tuple[np.ndarray, str]:
    """Apply one augmentation to a (C, H, W) image; ``op`` is a fixed one or ``random``.

    ``random`` is a random-angle rotation or a zoom in/out about the centre (reflecting boundary, so
    that the sky noise continues), as the paper's second augmentation stage.
    """
    if op == "flip_vertical":
        return image[:, ::-1, :].copy(), op
    if op == "flip_horizontal":
        return image[:, :, ::-1].copy(), op
    if op == "rot90":
        return np.rot90(image, 1, axes=(1, 2)).copy(), op
    if op == "rot180":
        return np.rot90(image, 2, axes=(1, 2)).copy(), op
    if op != "random":
        raise ValueError(f"unknown augmentation {op!r}")
    h, w = image.shape[1:]
    if rng.random() < 0.5:
        angle = rng.uniform(0.0, 360.0)
        theta, scale, name = np.deg2rad(angle), 1.0, f"rotate{angle:.1f}"
    else:
        scale = float(np.exp(rng.uniform(*np.log(zoom_range))))
        theta, name = 0.0, f"zoom{scale:.3f}"
    # Output pixel p maps to input matrix @ (p - c) + c: rotation by theta and magnification by scale.
    matrix = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) / scale
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    offset = centre - matrix @ centre
    out = np.stack([ndimage.affine_transform(band, matrix, offset=offset, order=1, mode="reflect")
                    for band in image])
    return out.astype(np.float32), name


def plan_class_balance(rows: np.ndarray, target: int, rng: np.random.Generator) -> list[tuple[int, str | None]]:
    """Plan ``target`` images from the originals ``rows`` (one class of one split) as (row, augmentation).

    Fewer originals than ``target``: keep all, then add the four fixed augmentations of each original,
    then random rotations/zooms of random originals (the paper's two stages). More: a random subset.
    """
    if len(rows) >= target:
        return [(int(r), None) for r in np.sort(rng.choice(rows, size=target, replace=False))]
    plan = [(int(r), None) for r in rows]
    plan += [(int(r), op) for op in FIXED_AUGMENTATIONS for r in rows]
    plan = plan[:target]
    plan += [(int(r), "random") for r in rng.choice(rows, size=target - len(plan))]
    return plan


def prepare_image_set(raw: ImageSet, *, filters: list[str], image_size: int, fractions=(0.7, 0.1, 0.2),
                      balance: bool = True, n_per_class: int | None = None, seed: int = 0,
                      progress: bool = True) -> ImageSet:
    """Turn a raw set into a prepared set (see the module docstring for the steps)."""
    if len(raw) == 0:
        raise ValueError("the raw image set is empty")
    data = reorder_filters(raw, filters) if raw.filters != list(filters) else raw
    data = ImageSet(resize_images(data.images, image_size), data.labels, data.object_id, dict(data.attrs))
    split = assign_splits(data.object_id, data.labels, fractions, seed)
    rng = np.random.default_rng(seed)
    fractions = np.asarray(fractions, dtype=float)

    plan = []  # (split code, row, augmentation or None)
    for code in SPLITS.values():
        in_split = split == code
        counts = {c: int(np.sum(in_split & (data.labels == c))) for c in (0, 1)}
        if n_per_class is not None:
            target = {c: int(round(n_per_class * fractions[code])) for c in (0, 1)}
        elif balance:
            target = {c: max(counts.values()) for c in (0, 1)}
        else:
            target = counts
        for c in (0, 1):
            rows = np.flatnonzero(in_split & (data.labels == c))
            if target[c] and not len(rows):
                raise ValueError(f"split {code} has no objects of label {c}: too few objects to split")
            plan.extend((code, r, op) for r, op in plan_class_balance(rows, target[c], rng))

    images = np.empty((len(plan),) + data.images.shape[1:], dtype=np.float32)
    names = []
    for i, (_, r, op) in enumerate(tqdm(plan, desc="augment", disable=not progress, mininterval=2)):
        if op is None:
            images[i], name = data.images[r], "none"
        else:
            images[i], name = augment_image(data.images[r], op, rng)
        names.append(name)
    rows = np.array([p[1] for p in plan], dtype=np.int64)
    out_split = np.array([p[0] for p in plan], dtype=np.int8)

    train = out_split == SPLITS["train"]
    mean = images[train].mean(axis=(0, 2, 3), dtype=np.float64)
    std = images[train].std(axis=(0, 2, 3), dtype=np.float64)
    attrs = dict(data.attrs, image_size=image_size, channel_mean=mean.astype(np.float32),
                 channel_std=np.maximum(std, 1e-12).astype(np.float32), split_fractions=fractions,
                 split_seed=seed)
    log.info("prepared %d images (%s)", len(images),
             ", ".join(f"{s}: {int(np.sum(out_split == c))}" for s, c in SPLITS.items()))
    return ImageSet(images, data.labels[rows].astype(np.int8), data.object_id[rows], attrs, out_split,
                    np.array(names))


def prepare_file(raw_path: str, out_path: str, **options) -> ImageSet:
    """Read a raw HDF5 set, prepare it (:func:`prepare_image_set`) and write the prepared set atomically."""
    raw = read_image_set(raw_path)
    prepared = prepare_image_set(raw, **options)
    prepared.attrs["raw_file"] = str(raw_path)
    write_image_set(out_path, prepared)
    return prepared
