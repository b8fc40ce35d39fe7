"""Reading the SDSS / Galaxy Zoo catalogues and selecting the real target sample (paper Sec. 4.2.2).

* Mergers: the Darg et al. (2010) Galaxy Zoo merger catalogue (``darg_mergers.fits`` read with
  astropy.table, or ``darg_mergers.csv``); the paper keeps only post-mergers, ``stage == 3``
  (310 rows).  Positions ``ra1``/``dec1``, redshift ``specz1``.  The object id of a Darg row is
  its 1-based row number (the ``id`` column of ``darg_mergers.csv``), which names its cutout
  ``mergers/<id>.jpeg``.
* Non-mergers: the Galaxy Zoo 1 table (CSV with ``ID``, ``RAdeg``, ``DEdeg``, ``zsp``, ``P_MG``);
  the paper draws 3000 at random with f_m = P_MG < 0.2 and 0.005 < z < 0.1.  ``ID`` names the
  cutout ``nonmergers/<ID>.jpeg``.

* Your own objects: a catalogue CSV with ``id`` (or ``object_id``), ``ra``, ``dec`` (degrees), ``label``
  (``1``/``merger`` or ``0``/``non-merger``; or one label for every row) and optionally ``z``
  (:func:`read_catalogue_csv`).

The selection table has the columns :data:`SELECTION_COLUMNS`:
``object_id, ra, dec, label (1 merger / 0 non-merger), subdir ("mergers"/"nonmergers"), z``.

Rows with a missing, non-numeric, non-finite or out-of-range position (or a missing id) are never
used: they are dropped and returned as ``(object_id, reason)`` pairs, and logged.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deepmerge_da.io.atomic import atomic_path

log = logging.getLogger(__name__)

SELECTION_COLUMNS = ["object_id", "ra", "dec", "label", "subdir", "z"]
MERGER_SUBDIR = "mergers"
NONMERGER_SUBDIR = "nonmergers"
# label values of a catalogue CSV (lower case): 1 = merger, 0 = non-merger
LABEL_VALUES = {"1": 1, "1.0": 1, "merger": 1, "0": 0, "0.0": 0, "non-merger": 0, "nonmerger": 0, "non_merger": 0}


class CatalogueError(ValueError):
    """A catalogue file is missing, unreadable, or lacks a required column."""


@dataclass
class Selection:
    """The selected objects, the rows dropped as bad, and notes on what was applied."""

    table: pd.DataFrame
    bad: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_mergers(self) -> int:
        return int((self.table["label"] == 1).sum())

    @property
    def n_nonmergers(self) -> int:
        return int((self.table["label"] == 0).sum())


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a FITS (astropy.table) or CSV (pandas) table into a DataFrame; clear error if missing."""
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"catalogue file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".fits", ".fit", ".fts") or path.name.lower().endswith(".fits.gz"):
            from astropy.table import Table

            table = Table.read(path)
            scalar = [name for name in table.colnames if len(table[name].shape) <= 1]
            dropped = sorted(set(table.colnames) - set(scalar))
            if dropped:
                log.info("%s: ignoring multidimensional columns %s", path, dropped)
            df = table[scalar].to_pandas()
            for name in df.columns:  # FITS strings come back as bytes on some astropy versions
                if df[name].dtype == object and len(df) and isinstance(df[name].iloc[0], bytes):
                    df[name] = df[name].str.decode("utf-8").str.strip()
            return df
        return pd.read_csv(path)
    except CatalogueError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise CatalogueError(f"cannot read catalogue {path}: {exc}") from exc


def _require(df: pd.DataFrame, columns, path) -> None:
    for col in columns:
        if col not in df.columns:
            raise CatalogueError(
                f"catalogue {path} has no column {col!r} (columns: {', '.join(map(str, df.columns))})")


def read_darg_catalogue(path: str | os.PathLike, *, id_col: str = "id", stage_col: str = "stage",
                        ra_col: str = "ra1", dec_col: str = "dec1",
                        stage_source: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read the Darg et al. (2010) merger catalogue (FITS or CSV).

    Adds ``id_col`` (the 1-based row number) when the file has none.  When the file lacks
    ``stage_col`` (the local ``darg_mergers.csv`` carries only positions and votes), the stage is
    taken from ``stage_source`` -- by default the ``.fits`` file of the same name beside it -- which
    must hold the same rows in the same order; the positions of the two are compared, and any
    disagreement is an error.  Without such a file a missing stage column is an error naming it.
    """
    path = Path(path)
    df = read_table(path)
    _require(df, [ra_col, dec_col], path)
    if id_col not in df.columns:
        df.insert(0, id_col, np.arange(1, len(df) + 1))
    if stage_col not in df.columns:
        source = Path(stage_source) if stage_source is not None else path.with_suffix(".fits")
        if source == path or not source.is_file():
            raise CatalogueError(
                f"catalogue {path} has no column {stage_col!r} (merger stage) and no FITS catalogue "
                f"{source} supplies it (columns: {', '.join(map(str, df.columns))})")
        other = read_table(source)
        _require(other, [stage_col, ra_col, dec_col], source)
        if len(other) != len(df):
            raise CatalogueError(f"{source} has {len(other)} rows but {path} has {len(df)}; "
                                 f"cannot take {stage_col!r} from it")
        ra_a = pd.to_numeric(df[ra_col], errors="coerce").to_numpy(float)
        ra_b = pd.to_numeric(other[ra_col], errors="coerce").to_numpy(float)
        de_a = pd.to_numeric(df[dec_col], errors="coerce").to_numpy(float)
        de_b = pd.to_numeric(other[dec_col], errors="coerce").to_numpy(float)
        both = np.isfinite(ra_a) & np.isfinite(ra_b) & np.isfinite(de_a) & np.isfinite(de_b)
        mismatch = both & ((np.abs(ra_a - ra_b) > 1e-5) | (np.abs(de_a - de_b) > 1e-5))
        if mismatch.any():
            row = int(np.flatnonzero(mismatch)[0]) + 1
            raise CatalogueError(f"{path} and {source} disagree on the position of row {row}; "
                                 f"cannot take {stage_col!r} from {source}")
        df[stage_col] = other[stage_col].to_numpy()
        log.info("%s: merger stage taken from %s", path, source)
    df.attrs["path"] = str(path)
    return df


def read_gz1_nonmergers(path: str | os.PathLike, *, id_col: str = "ID", ra_col: str = "RAdeg",
                        dec_col: str = "DEdeg", z_col: str = "zsp") -> pd.DataFrame:
    """Read the Galaxy Zoo 1 non-merger table (CSV or FITS); ``id_col``, position and z are required."""
    path = Path(path)
    df = read_table(path)
    _require(df, [id_col, ra_col, dec_col, z_col], path)
    df.attrs["path"] = str(path)
    return df


# --------------------------------------------------------------------------------------------
# selection
# --------------------------------------------------------------------------------------------

def _id_string(value) -> str | None:
    """Object ids as strings: integral floats lose their '.0'; missing -> None."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = str(value).strip()
    return text or None


def _position_problem(raw_ra, raw_dec, ra: float, dec: float) -> str | None:
    for name, raw, val, lo, hi, hi_open in (("ra", raw_ra, ra, 0.0, 360.0, True),
                                             ("dec", raw_dec, dec, -90.0, 90.0, False)):
        if raw is None or (isinstance(raw, str) and not raw.strip()) or (
                not isinstance(raw, str) and pd.isna(raw)):
            return f"{name} missing"
        if not math.isfinite(val):
            return f"{name} not a finite number: {raw!r}"
        if val < lo or (val >= hi if hi_open else val > hi):
            return f"{name} out of range: {val}"
    return None


def _clean_rows(df: pd.DataFrame, id_col: str, ra_col: str, dec_col: str, label: str,
                bad: list[tuple[str, str]]) -> pd.DataFrame:
    """Numeric positions, string ids; drops (and records in ``bad``) rows with a bad id or position."""
    ra = pd.to_numeric(df[ra_col], errors="coerce").to_numpy(float)
    dec = pd.to_numeric(df[dec_col], errors="coerce").to_numpy(float)
    ids = [_id_string(v) for v in df[id_col].to_numpy()]
    keep = np.ones(len(df), bool)
    seen: set[str] = set()
    rows = zip(ids, df[ra_col].to_numpy(), df[dec_col].to_numpy(), ra, dec, strict=True)
    for i, (oid, r, d, rr, dd) in enumerate(rows):
        if oid is None:
            reason, oid = f"{id_col} missing", f"<row {i + 1}>"
        elif "/" in oid or "\\" in oid or oid.startswith("."):
            reason = f"{id_col} not usable as a file name: {oid!r}"
        elif oid in seen:
            reason = f"duplicate {id_col}"
        else:
            reason = _position_problem(r, d, rr, dd)
        if reason is not None:
            keep[i] = False
            bad.append((oid, reason))
            log.warning("%s catalogue: dropping %s: %s", label, oid, reason)
        else:
            seen.add(oid)
    out = df.loc[keep].copy()
    out["_object_id"] = [o for o, k in zip(ids, keep, strict=True) if k]
    out["_ra"] = ra[keep]
    out["_dec"] = dec[keep]
    return out


def select_mergers(darg: pd.DataFrame, *, stage: int | None = 3, id_col: str = "id",
                   stage_col: str = "stage", ra_col: str = "ra1", dec_col: str = "dec1",
                   z_col: str | None = "specz1") -> Selection:
    """Darg rows of the given merger ``stage`` (3 = post-merger; None = all) as a selection table."""
    where = darg.attrs.get("path", "Darg catalogue")
    cols = [id_col, ra_col, dec_col] + ([stage_col] if stage is not None else [])
    _require(darg, cols, where)
    bad: list[tuple[str, str]] = []
    notes: list[str] = []
    df = darg
    if stage is not None:
        st = pd.to_numeric(df[stage_col], errors="coerce")
        df = df.loc[st == stage]
        notes.append(f"mergers: {len(df)} of {len(darg)} Darg rows have {stage_col} == {stage}")
    df = _clean_rows(df, id_col, ra_col, dec_col, "merger", bad)
    z = (pd.to_numeric(df[z_col], errors="coerce").to_numpy(float)
         if z_col is not None and z_col in df.columns else np.full(len(df), np.nan))
    table = pd.DataFrame({"object_id": df["_object_id"].to_numpy(), "ra": df["_ra"].to_numpy(),
                          "dec": df["_dec"].to_numpy(), "label": np.ones(len(df), np.int64),
                          "subdir": MERGER_SUBDIR, "z": z}, columns=SELECTION_COLUMNS)
    return Selection(table.reset_index(drop=True), bad, notes)


def galaxy_key(ra: np.ndarray, dec: np.ndarray, names=None) -> list[str]:
    """A key naming one galaxy: the SDSS designation when given, else the position to ~0.04 arcsec.

    The local GZ1 table was drawn with replacement: the same galaxy appears under several ``ID``
    values (which are row numbers, all different), so de-duplication is by galaxy, not by ID.
    """
    if names is not None:
        out = []
        for n, r, d in zip(names, ra, dec, strict=True):
            if isinstance(n, str) and n.strip():
                out.append(n.strip())
            else:
                out.append(f"{r:.5f},{d:+.5f}")
        return out
    return [f"{r:.5f},{d:+.5f}" for r, d in zip(ra, dec, strict=True)]


def select_nonmergers(gz1: pd.DataFrame, n: int | None = 3000, *, seed: int = 0, fm_max: float = 0.2,
                      z_min: float = 0.005, z_max: float = 0.1, id_col: str = "ID",
                      ra_col: str = "RAdeg", dec_col: str = "DEdeg", z_col: str = "zsp",
                      fm_col: str | None = "P_MG", name_col: str | None = "SDSS") -> Selection:
    """Non-mergers with f_m < ``fm_max`` and ``z_min`` < z < ``z_max``; a seeded random subset of ``n``.

    Repeated galaxies (same SDSS designation, or same position) are kept once, at their lowest id.
    The subset does not depend on the row order of the input (candidates are sorted by id before
    the seeded draw) and is returned sorted by id.  ``n=None`` keeps every candidate; asking for
    more than there are is an error.  When ``fm_col`` is absent the f_m cut cannot be applied:
    this is logged as a warning and recorded in ``notes``.
    """
    where = gz1.attrs.get("path", "GZ1 table")
    _require(gz1, [id_col, ra_col, dec_col, z_col], where)
    bad: list[tuple[str, str]] = []
    notes: list[str] = []
    df = _clean_rows(gz1, id_col, ra_col, dec_col, "non-merger", bad)
    z = pd.to_numeric(df[z_col], errors="coerce").to_numpy(float)
    keep = (z > z_min) & (z < z_max)
    notes.append(f"non-mergers: {int(keep.sum())} of {len(df)} rows have {z_min} < {z_col} < {z_max}")
    if fm_col is not None and fm_col in df.columns:
        fm = pd.to_numeric(df[fm_col], errors="coerce").to_numpy(float)
        keep &= fm < fm_max
        notes.append(f"non-mergers: {int(keep.sum())} also have {fm_col} < {fm_max}")
    else:
        msg = (f"{where}: no f_m column {fm_col!r}; the f_m < {fm_max} cut was NOT applied "
               "(the table is assumed to be pre-selected)")
        log.warning(msg)
        notes.append(msg)
    df = df.loc[keep].copy()
    df["_z"] = z[keep]
    # one galaxy, one object: order by numeric id when possible, keep the first of each galaxy
    num = pd.to_numeric(df["_object_id"], errors="coerce")
    df = df.assign(_num=num).sort_values(["_num", "_object_id"], na_position="last", kind="mergesort")
    names = df[name_col].to_numpy() if name_col is not None and name_col in df.columns else None
    df["_key"] = galaxy_key(df["_ra"].to_numpy(), df["_dec"].to_numpy(), names)
    dup = df["_key"].duplicated()
    if dup.any():
        notes.append(f"non-mergers: {int(dup.sum())} repeated galaxies dropped (kept at their lowest id)")
        df = df.loc[~dup]
    if n is not None:
        if n > len(df):
            raise CatalogueError(f"{where}: asked for {n} non-mergers but only {len(df)} distinct "
                                 f"galaxies pass the cuts")
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(df), size=n, replace=False))
        df = df.iloc[pick]
    table = pd.DataFrame({"object_id": df["_object_id"].to_numpy(), "ra": df["_ra"].to_numpy(),
                          "dec": df["_dec"].to_numpy(), "label": np.zeros(len(df), np.int64),
                          "subdir": NONMERGER_SUBDIR, "z": df["_z"].to_numpy()}, columns=SELECTION_COLUMNS)
    return Selection(table.reset_index(drop=True), bad, notes)


def build_selection(darg_path: str | os.PathLike, gz1_path: str | os.PathLike, *,
                    n_nonmergers: int | None = 3000, seed: int = 0, stage: int | None = 3,
                    fm_max: float = 0.2, z_min: float = 0.005, z_max: float = 0.1,
                    darg_columns: dict | None = None, gz1_columns: dict | None = None) -> Selection:
    """The paper's target sample: Darg post-mergers plus a seeded subset of GZ1 non-mergers.

    ``darg_columns`` may override ``id_col, stage_col, ra_col, dec_col, z_col``; ``gz1_columns``
    may override ``id_col, ra_col, dec_col, z_col, fm_col, name_col``.
    """
    dc = dict(darg_columns or {})
    gc = dict(gz1_columns or {})
    darg = read_darg_catalogue(darg_path, **{k: dc[k] for k in ("id_col", "stage_col", "ra_col", "dec_col")
                                            if k in dc})
    gz1 = read_gz1_nonmergers(gz1_path, **{k: gc[k] for k in ("id_col", "ra_col", "dec_col", "z_col")
                                           if k in gc})
    m = select_mergers(darg, stage=stage, **dc)
    nm = select_nonmergers(gz1, n_nonmergers, seed=seed, fm_max=fm_max, z_min=z_min, z_max=z_max, **gc)
    table = pd.concat([m.table, nm.table], ignore_index=True)
    bad = [(f"{MERGER_SUBDIR}/{i}", r) for i, r in m.bad] + [(f"{NONMERGER_SUBDIR}/{i}", r) for i, r in nm.bad]
    return Selection(table, bad, m.notes + nm.notes)


def read_catalogue_csv(path: str | os.PathLike, label: int | None = None) -> Selection:
    """A catalogue CSV of your own objects as a selection (mergers to ``mergers/``, the others to ``nonmergers/``).

    Columns (names case-insensitive): ``id`` or ``object_id``, ``ra`` and ``dec`` in degrees, ``label``
    (``1``/``merger``, ``0``/``non-merger``) unless ``label`` (1 or 0) is every row's, and optionally ``z``.  A
    file with a label column and a ``label`` argument is an error.  Rows with an unknown label, or a bad id or
    position (as :func:`select_mergers`), are dropped and returned in ``bad``.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"catalogue file not found: {path}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise CatalogueError(f"cannot read catalogue {path}: {exc}") from exc
    lower = {str(c).strip().lower(): c for c in df.columns}
    cols = {key: next((lower[n] for n in names if n in lower), None)
            for key, names in (("id", ("id", "object_id")), ("ra", ("ra",)), ("dec", ("dec",)),
                               ("label", ("label",)), ("z", ("z",)))}
    missing = [k for k in ("id", "ra", "dec") if cols[k] is None]
    if missing:
        raise CatalogueError(f"catalogue {path} has no column {', '.join(map(repr, missing))} (a catalogue needs id, "
                             f"ra and dec in degrees; columns: {', '.join(map(str, df.columns)) or 'none'})")
    if cols["label"] is not None and label is not None:
        raise CatalogueError(f"catalogue {path} has a label column {cols['label']!r}: a label for every row would "
                             f"override it")
    if cols["label"] is None and label is None:
        raise CatalogueError(f"catalogue {path} has no column 'label' (1 / merger, 0 / non-merger) and no label was "
                             f"given for every row")
    bad: list[tuple[str, str]] = []
    if label is not None:
        labels = pd.Series(int(label), index=df.index)
    else:
        text = df[cols["label"]].str.strip().str.lower()
        labels = text.map(LABEL_VALUES)
        for oid, value in zip(df.loc[labels.isna(), cols["id"]], df.loc[labels.isna(), cols["label"]], strict=True):
            bad.append((oid.strip() or "<no id>", f"label {value!r} is not 1 / merger or 0 / non-merger"))
            log.warning("%s: dropping %s: %s", path, *bad[-1])
        df, labels = df.loc[labels.notna()], labels.loc[labels.notna()].astype(int)
    df = df.assign(_label=labels)
    df = _clean_rows(df, cols["id"], cols["ra"], cols["dec"], "catalogue", bad)
    z = (pd.to_numeric(df[cols["z"]], errors="coerce").to_numpy(float) if cols["z"] is not None
         else np.full(len(df), np.nan))
    lab = df["_label"].to_numpy(np.int64)
    table = pd.DataFrame({"object_id": df["_object_id"].to_numpy(), "ra": df["_ra"].to_numpy(),
                          "dec": df["_dec"].to_numpy(), "label": lab,
                          "subdir": np.where(lab == 1, MERGER_SUBDIR, NONMERGER_SUBDIR), "z": z},
                         columns=SELECTION_COLUMNS)
    notes = [f"{path}: {int((lab == 1).sum())} mergers and {int((lab == 0).sum())} non-mergers of "
             f"{len(lab) + len(bad)} rows"]
    return Selection(table.reset_index(drop=True), bad, notes)


def write_selection(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a selection table as CSV atomically (temporary name in the same directory, then rename)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def read_selection(path: str | os.PathLike) -> pd.DataFrame:
    """Read a selection table written by :func:`write_selection` (object ids kept as strings)."""
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"selection table not found: {path}")
    df = pd.read_csv(path, dtype={"object_id": str, "subdir": str})
    _require(df, ["object_id", "ra", "dec", "subdir"], path)
    return df
