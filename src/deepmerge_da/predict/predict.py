"""Classify your own cutouts with trained checkpoints (``deepmerge-da predict``).

Inputs (:func:`expand_inputs`): files, directories (their image files, not recursive) and glob patterns
(``**`` recurses), of these kinds:

* FITS (``.fits``, ``.fit``, ``.fts``, optionally ``.gz``): either one image HDU holding a cube of planes
  (C, H, W) -- whose planes are named by header keywords ``FILTER1``, ``FILTER2``, ... when present, else
  by ``filters`` (default: the model's filters, in the model's order) -- or one 2-D image HDU per filter,
  each named by its ``FILTER`` header keyword (``filter_keyword``; ``EXTNAME`` when it has none). The
  planes the model needs are picked by name (case-insensitive) and put in the model's order; a missing
  one is an error naming the file, the filters needed and those found.
* JPEG / PNG: 8-bit RGB, read exactly as the SDSS import does (:mod:`deepmerge_da.data.sdss_cutouts`): Pillow
  decodes the file as RGB, whose channels are the SDSS i, r, g bands, and the pixel values stay 8-bit
  counts (0..255) as float32. JPEGs go through the import's own check (:func:`deepmerge_da.data.fetch.check_jpeg`):
  empty, truncated, corrupt, non-RGB and blank files are rejected with its reason.
* NPY: one image, (C, H, W) or (H, W, C) (told apart by the model's channel count), planes named as for
  a FITS cube without ``FILTERn`` keywords.
* CSV: a catalogue with columns ``id`` (or ``object_id``), ``ra`` and ``dec`` (degrees; names are
  case-insensitive); one SDSS cutout per row is fetched with :func:`deepmerge_da.data.fetch.fetch_cutouts` (rate
  limit, retries, validation, resume) into ``cache_dir/<catalogue name>/cutouts/<id>.jpeg`` and read as a JPEG.

Preprocessing is that of the training data: planes reordered to the checkpoint's filters
(:func:`deepmerge_da.data.preprocess.reorder_filters`), resized to the checkpoint's input size with
:func:`deepmerge_da.data.preprocess.resize_images` (bilinear, antialiased), then standardised per channel with
the training statistics stored in the checkpoint, exactly as :func:`deepmerge_da.training.loop.load_split` does.

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

import glob
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from deepmerge_da.io.atomic import atomic_path
from deepmerge_da.io.checkpoint import load_model
from deepmerge_da.data.fetch import DEFAULT_BASE_URL, check_jpeg_file, fetch_cutouts, is_blank
from deepmerge_da.io.hdf5 import ImageSet, read_image_set
from deepmerge_da.data.preprocess import reorder_filters, resize_images
from deepmerge_da.data.sdss_cutouts import FILTERS as JPEG_FILTERS
from deepmerge_da.training.loop import predict_logits, resolve_device

log = logging.getLogger(__name__)

JPEG_UNITS = "8-bit JPEG counts"
NORMALISATIONS = ("auto", "trained_on", "other_domain")
# Recognised file name endings (lower case) and their kind; longest first.
EXTENSIONS = (
    (".fits.gz", "fits"), (".fit.gz", "fits"), (".fts.gz", "fits"), (".fits", "fits"), (".fit", "fits"),
    (".fts", "fits"), (".jpeg", "jpeg"), (".jpg", "jpeg"), (".png", "png"), (".npy", "npy"), (".csv", "catalogue"),
)
IMAGE_KINDS = ("fits", "jpeg", "png", "npy")
SKIPPED_COLUMNS = ["source", "id", "reason"]
_GLOB_CHARS = re.compile(r"[*?\[]")


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Skipped:
    """An input that was not classified, and why."""

    source: str
    id: str
    reason: str


@dataclass(frozen=True)
class InputImage:
    """One image to classify: its output ``id``, the file it is read from and the file's kind."""

    id: str
    source: str
    kind: str


def input_kind(path: str | os.PathLike) -> str | None:
    """``fits``, ``jpeg``, ``png``, ``npy``, ``catalogue`` (CSV), or None for other files."""
    name = Path(path).name.lower()
    return next((kind for ext, kind in EXTENSIONS if name.endswith(ext)), None)


def input_stem(path: str | os.PathLike) -> str:
    """The file name without its recognised extension (``a.fits.gz`` -> ``a``)."""
    name = Path(path).name
    for ext, _ in EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


def expand_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> tuple[list[Path], list[Skipped]]:
    """Files named by ``inputs`` (paths, directories, globs), in order without repeats, and what was skipped.

    A directory contributes its image files (FITS, JPEG, PNG, NPY; not CSV catalogues, not subdirectories);
    a glob every file it matches (``recursive=True``). A missing path, a pattern that matches nothing, an
    empty directory and a file of an unknown type are returned as :class:`Skipped`.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        if input_kind(path) is None:
            skipped.append(Skipped(str(path), input_stem(path), "unsupported file type (not FITS, JPEG, PNG, "
                                                                 "NPY or a CSV catalogue)"))
        else:
            files.append(path)

    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and input_kind(p) in IMAGE_KINDS)
            if not found:
                skipped.append(Skipped(text, "", "directory has no FITS, JPEG, PNG or NPY files"))
            for p in found:
                add(p)
        elif path.is_file():
            add(path)
        elif _GLOB_CHARS.search(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                skipped.append(Skipped(text, "", "no file matches this pattern"))
            for m in matches:
                add(m)
        else:
            skipped.append(Skipped(text, input_stem(path), "missing file"))
    return files, skipped


def input_files(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """The files ``inputs`` denote now, for a workflow's input list: plain paths as given (existing or not, so
    that a missing one is an error or is built by another rule), directories and globs expanded as
    :func:`expand_inputs` expands them."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[str] = []
    for item in inputs:
        text = os.fspath(item)
        if Path(text).is_dir() or (_GLOB_CHARS.search(text) and not Path(text).exists()):
            out += [str(p) for p in expand_inputs([text])[0]]
        else:
            out.append(text)
    return list(dict.fromkeys(out))


def _find_column(df: pd.DataFrame, names: Sequence[str]) -> str | None:
    lower = {str(c).strip().lower(): c for c in df.columns}
    return next((lower[n] for n in names if n in lower), None)


def read_catalogue(path: str | os.PathLike) -> pd.DataFrame:
    """A catalogue CSV as a DataFrame with columns ``id`` (str), ``ra``, ``dec`` (float, NaN when unreadable)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    cols = {"id": _find_column(df, ("id", "object_id")), "ra": _find_column(df, ("ra",)),
            "dec": _find_column(df, ("dec",))}
    missing = [k for k, v in cols.items() if v is None]
    if missing:
        raise ValueError(f"catalogue {path} lacks the column(s) {', '.join(missing)} (a catalogue needs id, ra "
                         f"and dec in degrees; found: {', '.join(map(str, df.columns)) or 'none'})")
    return pd.DataFrame({"id": df[cols["id"]].astype(str).str.strip(),
                         "ra": pd.to_numeric(df[cols["ra"]], errors="coerce"),
                         "dec": pd.to_numeric(df[cols["dec"]], errors="coerce")})


def _usable_id(value: str) -> bool:
    return bool(value) and value not in (".", "..") and "/" not in value and "\\" not in value \
        and not value.startswith(".")


def fetch_catalogue_cutouts(catalogue: str | os.PathLike, cache_dir: str | os.PathLike, *,
                            base_url: str = DEFAULT_BASE_URL, progress: bool = True,
                            fetch_options: dict | None = None) -> tuple[list[InputImage], list[Skipped]]:
    """Fetch the SDSS cutout of every row of ``catalogue`` into ``cache_dir/<catalogue name>/``.

    Uses :func:`deepmerge_da.data.fetch.fetch_cutouts` (its rate limit, retries, validation and resume: a cutout
    already in the cache and valid is not requested again). Returns the cutouts as JPEG inputs, in
    catalogue order, and the rows that failed (bad id or position, download failure) with their reason;
    failures are never fatal here. ``fetch_options`` go to ``fetch_cutouts`` (e.g. ``rate_per_s``).
    """
    catalogue = Path(catalogue)
    table = read_catalogue(catalogue)
    skipped: list[Skipped] = []
    keep = []
    seen: set[str] = set()
    for i, oid in enumerate(table["id"]):
        if not _usable_id(oid):
            skipped.append(Skipped(str(catalogue), oid, f"row {i + 1}: id {oid!r} cannot name a file"))
        elif oid in seen:
            skipped.append(Skipped(str(catalogue), oid, f"row {i + 1}: id {oid!r} is repeated"))
        else:
            seen.add(oid)
            keep.append(i)
    rows = table.iloc[keep]
    if not len(table):
        skipped.append(Skipped(str(catalogue), "", "catalogue has no rows"))
    if not len(rows):
        return [], skipped
    selection = pd.DataFrame({"object_id": rows["id"].to_numpy(), "ra": rows["ra"].to_numpy(),
                              "dec": rows["dec"].to_numpy(), "subdir": "cutouts"})
    out_dir = Path(cache_dir) / re.sub(r"[^A-Za-z0-9_.-]", "_", input_stem(catalogue))
    options = dict(fetch_options or {})
    options.setdefault("max_fail_fraction", 1.0)  # failures are reported per row, not fatal
    log.info("fetching %d cutouts of %s from %s into %s", len(selection), catalogue, base_url, out_dir)
    report = fetch_cutouts(selection, out_dir, base_url=base_url, progress=progress, **options)
    images = []
    for r in report.results:
        path = out_dir / r.subdir / f"{r.object_id}.jpeg"
        if r.status in ("ok", "skipped_existing"):
            images.append(InputImage(r.object_id, str(path), "jpeg"))
        else:
            skipped.append(Skipped(str(catalogue), r.object_id, f"cutout not fetched: {r.reason or r.status}"))
    return images, skipped


# ------------------------------------------------------------------------------------------------
# reading one image
# ------------------------------------------------------------------------------------------------

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


def _fits_array(path: Path, need: Sequence[str], n_channels: int, filter_keyword: str) -> tuple[np.ndarray, list | None]:
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
    disagreeing inputs are a ValueError, an unusable checkpoint a :class:`deepmerge_da.io.checkpoint.CheckpointError`."""
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
                if np.array_equal(np.asarray(d["channel_mean"], np.float32), np.asarray(file_attrs["channel_mean"], np.float32)) \
                        and np.array_equal(np.asarray(d["channel_std"], np.float32), np.asarray(file_attrs["channel_std"], np.float32)):
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


def _write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.9g")


def skipped_path(out_csv: str | os.PathLike) -> Path:
    """``<out>.skipped.csv`` beside the predictions CSV (``preds.csv`` -> ``preds.skipped.csv``)."""
    out = Path(out_csv)
    return out.with_name((out.name[:-4] if out.name.lower().endswith(".csv") else out.name) + ".skipped.csv")


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
    if filters is not None and spec.filters and sorted(f.lower() for f in filters) != sorted(f.lower() for f in spec.filters):
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
        _write_csv(pd.DataFrame([s.__dict__ for s in skipped], columns=SKIPPED_COLUMNS), skipped_path(out_csv))
    if not len(df):
        reasons = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:5])
        raise ValueError(f"no input could be classified ({len(skipped)} skipped"
                         + (f"; {reasons}" if reasons else "") + ")")
    if out_csv is not None:
        _write_csv(df, out_csv)
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
