"""Classify images with an ensemble of trained checkpoints (``deepmerge-da predict``).

:func:`predict` classifies the inputs :mod:`deepmerge_da.predict.inputs` finds, read by
:mod:`deepmerge_da.predict.readers`, and writes what :mod:`deepmerge_da.predict.outputs` describes;
:func:`predict_image_set` classifies a split of an HDF5 image set through the same preprocessing.

Preprocessing is that of the training data: planes reordered to the checkpoint's filters
(:func:`deepmerge_da.data.preprocess.reorder_filters`), resized to the checkpoint's input size with
:func:`deepmerge_da.data.preprocess.resize_images` (bilinear, antialiased), then standardised per channel with
the training statistics stored in the checkpoint, exactly as :func:`deepmerge_da.training.runtime.load_split` does.

Which statistics: a checkpoint stores those of the domain it was trained on (``input.trained_on``) and of the
other domain (``input.other_domain``); evaluation standardises each domain with its own. With
``normalisation="auto"`` an input uses the statistics of the domain whose ``units`` match its kind: JPEG/PNG
inputs those of the domain in 8-bit JPEG counts (for a sim2real model: the real/JPEG target), FITS/NPY inputs
those of a domain in physical units (the trained-on domain when both are, as in sim2sim). ``"trained_on"`` or
``"other_domain"`` forces one.

Output (:func:`predict`): one row per classified image -- ``id`` (file stem, or catalogue id), ``source`` (the
file read), ``p_merger`` and ``label`` (``merger`` when ``p_merger >= threshold``, else ``non-merger``). With
several checkpoints (e.g. seeds) ``p_merger`` is their mean, ``p_merger_std`` the standard deviation over
models (ddof=1, as the seed tables) and ``p_merger_<i>`` the probability of model ``i`` (0-based, in the given
order). Inputs that cannot be read or do not fit the model are skipped with a logging warning naming the file
and the reason, and listed in ``<out>.skipped.csv`` (columns ``source, id, reason``); when nothing could be
classified, :func:`predict` raises.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from deepmerge_da.data.preprocess import reorder_filters, resize_images
from deepmerge_da.data.sdss_cutouts import DEFAULT_BASE_URL
from deepmerge_da.io.checkpoint import load_model
from deepmerge_da.io.hdf5 import ImageSet, read_image_set
from deepmerge_da.predict.inputs import (
    InputImage,
    Skipped,
    expand_inputs,
    fetch_catalogue_cutouts,
    input_kind,
    input_stem,
)
from deepmerge_da.predict.outputs import SKIPPED_COLUMNS, skipped_path, write_csv
from deepmerge_da.predict.readers import read_image
from deepmerge_da.training.runtime import predict_logits, resolve_device

log = logging.getLogger(__name__)

NORMALISATIONS = ("auto", "trained_on", "other_domain")


# ------------------------------------------------------------------------------------------------
# models and preprocessing
# ------------------------------------------------------------------------------------------------

@dataclass
class LoadedModel:
    path: str
    model: torch.nn.Module
    meta: dict

    @property
    def trained_on(self) -> dict:
        return self.meta["input"]["trained_on"]

    def domain(self, which: str) -> dict:
        return self.meta["input"].get(which) or {}


@dataclass(frozen=True)
class ModelInput:
    """What every model of an ensemble needs: filter names in order, and the input size."""

    filters: tuple[str, ...]
    image_size: int
    n_channels: int


def load_models(checkpoints: Sequence[str | os.PathLike], device: torch.device | str = "cpu"
                ) -> tuple[list[LoadedModel], ModelInput]:
    """Load checkpoints (sha256 checked, :func:`deepmerge_da.io.checkpoint.load_model`) and the input they share;
    disagreeing inputs are a ValueError, an unusable checkpoint a
    :class:`deepmerge_da.io.checkpoint.CheckpointError`."""
    if isinstance(checkpoints, (str, os.PathLike)):
        checkpoints = [checkpoints]
    if not checkpoints:
        raise ValueError("no checkpoint given")
    models = []
    for path in checkpoints:
        model, meta = load_model(path, device)
        models.append(LoadedModel(str(path), model, meta))
    first = models[0]
    for m in models[1:]:
        for key in ("filters", "image_size"):
            a, b = first.trained_on.get(key), m.trained_on.get(key)
            if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
                raise ValueError(f"checkpoints disagree on {key}: {first.path} has {a}, {m.path} has {b}; "
                                 "an ensemble needs the same input")
    filters = tuple(first.trained_on.get("filters") or ())
    spec = ModelInput(filters, int(first.trained_on["image_size"]), len(filters) or 3)
    return models, spec


def to_model_input(image: np.ndarray, names: Sequence[str] | None, spec: ModelInput, source: str = "") -> np.ndarray:
    """A (C, H, W) image in the model's filter order and size, as the prepare step makes training images."""
    what = source or "image"
    if image.shape[0] != spec.n_channels:
        found = f" ({', '.join(names)})" if names else ""
        raise ValueError(f"{what}: the model needs {spec.n_channels} channels {list(spec.filters)} but the image "
                         f"has {image.shape[0]}{found}")
    data = ImageSet(image[None], np.zeros(1, np.int8), np.array([what]), {"filters": list(spec.filters)})
    if names is not None and spec.filters:
        wanted = {f.lower(): f for f in spec.filters}
        canonical = [wanted.get(str(n).lower(), str(n)) for n in names]
        if sorted(canonical) != sorted(spec.filters):
            raise ValueError(f"{what}: the model needs filters {list(spec.filters)} but the image has "
                             f"{list(names)}")
        data.attrs["filters"] = canonical
        if canonical != list(spec.filters):
            data = reorder_filters(data, list(spec.filters))
    return resize_images(data.images, spec.image_size)[0]


def _is_jpeg_units(domain: dict) -> bool:
    return "jpeg" in str(domain.get("units", "")).lower()


def normalisation_stats(model: LoadedModel, kind: str, choice: str = "auto",
                        file_attrs: dict | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(domain name, channel_mean, channel_std) with which ``model`` standardises an input of ``kind``.

    ``choice``: ``trained_on``, ``other_domain`` or ``auto`` (see the module docstring). For an HDF5 image
    set (``kind="hdf5"``), ``auto`` picks the domain whose statistics are the file's own (as evaluation does).
    """
    if choice not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, not {choice!r}")
    domains = {k: model.domain(k) for k in ("trained_on", "other_domain") if model.domain(k).get("channel_mean")}
    if choice != "auto":
        if choice not in domains:
            raise ValueError(f"checkpoint {model.path} records no statistics of its {choice} domain")
        which = choice
    else:
        which = None
        if file_attrs is not None and "channel_mean" in file_attrs:
            for name, d in domains.items():
                if np.array_equal(np.asarray(d["channel_mean"], np.float32),
                                  np.asarray(file_attrs["channel_mean"], np.float32)) \
                        and np.array_equal(np.asarray(d["channel_std"], np.float32),
                                           np.asarray(file_attrs["channel_std"], np.float32)):
                    which = name
                    break
        if which is None:
            jpeg = kind in ("jpeg", "png") or (file_attrs is not None and _is_jpeg_units(file_attrs))
            which = next((n for n in ("trained_on", "other_domain") if n in domains
                          and _is_jpeg_units(domains[n]) == jpeg), "trained_on")
    d = domains[which]
    return which, np.asarray(d["channel_mean"], np.float32), np.asarray(d["channel_std"], np.float32)


def _probabilities(models: list[LoadedModel], images: np.ndarray, stats: list[list[tuple]], device,
                   batch_size: int) -> np.ndarray:
    """(N, n_models) p_merger of a batch; ``stats[m][i]`` is (mean, std) of model m for image i."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    out = np.empty((len(images), len(models)), dtype=np.float64)
    for j, m in enumerate(models):
        mean = torch.from_numpy(np.stack([s[0] for s in stats[j]])).view(len(images), -1, 1, 1)
        std = torch.from_numpy(np.stack([s[1] for s in stats[j]])).view(len(images), -1, 1, 1)
        z = ((x - mean) / std).contiguous().to(device)
        out[:, j] = torch.softmax(predict_logits(m.model, z, batch_size), dim=1)[:, 1].cpu().numpy()
    return out


def _ensemble_frame(base: dict, p: np.ndarray, threshold: float, label_column: str = "label") -> pd.DataFrame:
    df = pd.DataFrame(base)
    df["p_merger"] = p.mean(axis=1) if len(p) else np.empty(0)
    df[label_column] = np.where(df["p_merger"].to_numpy() >= threshold, "merger", "non-merger")
    if p.shape[1] > 1:
        df["p_merger_std"] = p.std(axis=1, ddof=1)
        for j in range(p.shape[1]):
            df[f"p_merger_{j}"] = p[:, j]
    return df


# ------------------------------------------------------------------------------------------------
# the public entry points
# ------------------------------------------------------------------------------------------------

def predict(inputs, checkpoints: Sequence[str | os.PathLike] | str | os.PathLike,
            out_csv: str | os.PathLike | None = None, threshold: float = 0.5, batch_size: int = 256,
            device: str = "cpu", progress: bool = True, filters: Sequence[str] | None = None, *,
            normalisation: str = "auto", filter_keyword: str = "FILTER", cache_dir: str | os.PathLike | None = None,
            sdss_base_url: str = DEFAULT_BASE_URL, fetch_options: dict | None = None,
            threads: int | None = None) -> pd.DataFrame:
    """Classify ``inputs`` (files, directories, globs; see the module docstring) with ``checkpoints``.

    Returns the predictions as a DataFrame (``id, source, p_merger, label`` [+ ``p_merger_std, p_merger_<i>``
    for several checkpoints]) whose ``attrs["skipped"]`` lists the :class:`Skipped` inputs; writes it to
    ``out_csv`` (atomically) and the skipped inputs to :func:`skipped_path` when ``out_csv`` is given.
    ``filters``: plane names of unnamed inputs (NPY, FITS cubes), default the model's order.
    ``cache_dir``: where catalogue cutouts are fetched to (default ``<out_csv dir>/cutouts``, else ``./cutouts``).
    Raises :class:`ValueError` when the checkpoints disagree on their input or when no input could be classified,
    and before reading or writing anything when ``out_csv`` or its :func:`skipped_path` is a directory.
    """
    if out_csv is not None:
        for path in (Path(out_csv), skipped_path(out_csv)):
            if path.is_dir():
                raise ValueError(f"output {path} is a directory; give the predictions CSV file to write "
                                 f"(e.g. {Path(out_csv) / 'predictions.csv'})")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], not {threshold}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    dev = resolve_device(device)
    models, spec = load_models(checkpoints, dev)
    if filters is not None and spec.filters \
            and sorted(f.lower() for f in filters) != sorted(f.lower() for f in spec.filters):
        raise ValueError(f"filters {list(filters)} are not the model's filters {list(spec.filters)} "
                         f"(checkpoint {models[0].path}) in some order")
    for j, m in enumerate(models):
        t = m.trained_on
        log.info("model %d: %s (%s/%s/%s seed %s), input %s %dx%d; trained on %s [%s]", j, m.path,
                 m.meta.get("pair"), m.meta.get("network"), m.meta.get("method"), m.meta.get("seed"),
                 list(spec.filters), spec.image_size, spec.image_size, t.get("data_source", "?"), t.get("units", "?"))

    files, skipped = expand_inputs(inputs)
    if cache_dir is None:
        cache_dir = Path(out_csv).parent / "cutouts" if out_csv is not None else Path("cutouts")
    items: list[InputImage] = []
    for path in files:
        kind = input_kind(path)
        if kind == "catalogue":
            try:
                got, bad = fetch_catalogue_cutouts(path, cache_dir, base_url=sdss_base_url, progress=progress,
                                                   fetch_options=fetch_options)
            except (ValueError, OSError, pd.errors.ParserError) as exc:
                got, bad = [], [Skipped(str(path), input_stem(path), f"catalogue not usable: {exc}")]
            items += got
            skipped += bad
        else:
            items.append(InputImage(input_stem(path), str(path), kind))
    for s in skipped:
        log.warning("skipped %s%s: %s", s.source, f" (id {s.id})" if s.id and s.id not in s.source else "", s.reason)

    rows: list[dict] = []
    probs: list[np.ndarray] = []
    stats_of: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    batch: list[tuple[InputImage, np.ndarray]] = []
    sizes: dict[tuple[int, int], int] = {}

    def model_stats(j: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
        if (j, kind) not in stats_of:
            which, mean, std = normalisation_stats(models[j], kind, normalisation)
            log.info("model %d standardises %s inputs with its %s statistics (%s)", j,
                     kind.upper(), which, models[j].domain(which).get("units", "?"))
            stats_of[(j, kind)] = (mean, std)
        return stats_of[(j, kind)]

    def flush() -> None:
        if not batch:
            return
        images = np.stack([b[1] for b in batch])
        stats = [[model_stats(j, item.kind) for item, _ in batch] for j in range(len(models))]
        probs.append(_probabilities(models, images, stats, dev, batch_size))
        rows.extend({"id": item.id, "source": item.source} for item, _ in batch)
        batch.clear()

    for item in tqdm(items, desc="predict", unit="img", disable=not progress, mininterval=1):
        try:
            image, names = read_image(item.source, item.kind, need=spec.filters, n_channels=spec.n_channels,
                                      filters=filters, filter_keyword=filter_keyword)
            sizes[image.shape[1:]] = sizes.get(image.shape[1:], 0) + 1
            x = to_model_input(image, names, spec, item.source)
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
            reason = str(exc) if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {exc}"
            reason = reason[len(item.source) + 2:] if reason.startswith(item.source + ": ") else reason
            log.warning("skipped %s: %s", item.source, reason)
            skipped.append(Skipped(item.source, item.id, reason))
            continue
        batch.append((item, x))
        if len(batch) >= batch_size:
            flush()
    flush()

    p = np.concatenate(probs) if probs else np.empty((0, len(models)))
    df = _ensemble_frame({"id": [r["id"] for r in rows], "source": [r["source"] for r in rows]}, p, threshold)
    df.attrs["skipped"] = list(skipped)
    if sizes:
        log.info("input sizes (H x W: count): %s; all resized to %dx%d",
                 ", ".join(f"{h}x{w}: {n}" for (h, w), n in sorted(sizes.items())), spec.image_size, spec.image_size)
    odd = {s for s in sizes if s[0] != s[1]}
    if odd:
        log.warning("%d non-square inputs were resized to a square (their aspect ratio is not kept)",
                    sum(sizes[s] for s in odd))
    repeated = int(df["id"].duplicated(keep=False).sum())
    if repeated:
        log.warning("%d rows share their id with another (same file stem in several places); the source "
                    "column tells them apart", repeated)
    if out_csv is not None:
        write_csv(pd.DataFrame([s.__dict__ for s in skipped], columns=SKIPPED_COLUMNS), skipped_path(out_csv))
    if not len(df):
        reasons = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:5])
        raise ValueError(f"no input could be classified ({len(skipped)} skipped"
                         + (f"; {reasons}" if reasons else "") + ")")
    if out_csv is not None:
        write_csv(df, out_csv)
    log.info("classified %d images (%d called mergers at p_merger >= %g), skipped %d%s", len(df),
             int((df["label"] == "merger").sum()), threshold, len(skipped),
             f" -> {out_csv}" if out_csv is not None else "")
    return df


def predict_image_set(h5_path: str | os.PathLike, split: str | None, checkpoints, *, batch_size: int = 256,
                      device: str = "cpu", normalisation: str = "auto", threshold: float = 0.5) -> pd.DataFrame:
    """Predictions for one split of an HDF5 image set, through the preprocessing of :func:`predict`.

    Rows: ``object_id, label`` (the set's true label, 1 = merger), ``p_merger``, ``predicted`` (merger /
    non-merger) [+ ``p_merger_std, p_merger_<i>``]. For a prepared set and ``normalisation="auto"`` each model
    standardises with the statistics of the domain the file is (those stored in the file), so the result is
    that of :func:`deepmerge_da.report.evaluate.evaluate_run` on the same split.
    """
    dev = resolve_device(device)
    models, spec = load_models(checkpoints, dev)
    data = read_image_set(h5_path, split=split)
    names = data.filters or None
    images = np.stack([to_model_input(img, names, spec, f"{h5_path}[{i}]") for i, img in enumerate(data.images)]) \
        if len(data) else np.empty((0, spec.n_channels, spec.image_size, spec.image_size), np.float32)
    stats = []
    for j, m in enumerate(models):
        which, mean, std = normalisation_stats(m, "hdf5", normalisation, data.attrs)
        log.info("model %d standardises %s with its %s statistics", j, h5_path, which)
        stats.append([(mean, std)] * len(images))
    p = np.concatenate([_probabilities(models, images[k:k + batch_size],
                                       [s[k:k + batch_size] for s in stats], dev, batch_size)
                        for k in range(0, len(images), batch_size)]) if len(images) else np.empty((0, len(models)))
    df = _ensemble_frame({"object_id": data.object_id, "label": data.labels.astype(int)}, p, threshold,
                         label_column="predicted")
    return df
