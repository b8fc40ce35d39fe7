"""What ``deepmerge-da predict`` is given to classify: files, directories, globs and catalogues.

Inputs (:func:`expand_inputs`): files, directories (their image files, not recursive) and glob patterns
(``**`` recurses), of these kinds (:data:`EXTENSIONS`): FITS (``.fits``, ``.fit``, ``.fts``, optionally ``.gz``),
JPEG, PNG and NPY images, read by :mod:`deepmerge_da.predict.readers`, and

* CSV: a catalogue with columns ``id`` (or ``object_id``), ``ra`` and ``dec`` (degrees; names are
  case-insensitive); one SDSS cutout per row is fetched with :func:`deepmerge_da.data.fetch.fetch_cutouts` (rate
  limit, retries, validation, resume) into ``cache_dir/<catalogue name>/cutouts/<id>.jpeg`` and read as a JPEG
  (:func:`fetch_catalogue_cutouts`).

What cannot be used (a missing file, a pattern that matches nothing, an unknown file type, a bad catalogue row)
is returned as :class:`Skipped`, with the reason.
"""
from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepmerge_da.data.sdss_cutouts import DEFAULT_BASE_URL

log = logging.getLogger(__name__)

# Recognised file name endings (lower case) and their kind; longest first.
EXTENSIONS = (
    (".fits.gz", "fits"), (".fit.gz", "fits"), (".fts.gz", "fits"), (".fits", "fits"), (".fit", "fits"),
    (".fts", "fits"), (".jpeg", "jpeg"), (".jpg", "jpeg"), (".png", "png"), (".npy", "npy"), (".csv", "catalogue"),
)
IMAGE_KINDS = ("fits", "jpeg", "png", "npy")
_GLOB_CHARS = re.compile(r"[*?\[]")


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
    # imported here, not at the top: the fetcher needs the network stack (requests), which classifying local
    # files never does
    from deepmerge_da.data.fetch import fetch_cutouts

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
