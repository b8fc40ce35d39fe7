"""Merger histories from SubLink merger trees, labelled merger / non-merger as DeepMerge II does (Sec. 4).

The paper labels a galaxy a merger when it takes part in a major merger -- stellar mass ratio 1:10 or closer --
within a time window around its snapshot: 0.5 Gyr centred on the z = 2 snapshot for sim2sim (past and future
mergers), the 0.25 Gyr before the z = 0 snapshot for sim2real (past mergers only; the simulation ends there).

**Tree format.**  The SubLink tree that the Illustris API serves for a subhalo as HDF5 (``.../sublink/full.hdf5``:
the subhalo and all its progenitors, row 0 the subhalo itself), with the fields of the SubLink specification
(https://www.illustris-project.org/data/docs/specifications/, "Merger Trees: SubLink"; Rodriguez-Gomez et al.
2015): ``SubhaloID`` (unique within the tree), ``DescendantID``, ``FirstProgenitorID``, ``NextProgenitorID``
(-1: none), ``SnapNum``, ``SubfindID`` and ``SubhaloMassType`` (N, 6) in 1e10 Msun/h, column 4 the stars.
:func:`read_sublink_tree` checks exactly these; other fields are ignored.

**Merger definition** (that of illustris_python's ``sublink.numMergers``, Rodriguez-Gomez et al. 2015): at a node
whose first progenitor is ``fp``, every next progenitor ``np`` of ``fp`` merges with it; the ratio is
``min(M_np, M_fp) / max(M_np, M_fp)`` with M the largest stellar mass along each branch's main progenitor history
(the "maximum past mass", so that stripping before the merger does not lower the ratio), and the merger's time is
that of the node (the first snapshot in which the two are one subhalo).

**Which mergers are the galaxy's** (:func:`label_subhalo`).  The galaxy S at the snapshot is found in the tree of
the root R, which is S itself or S's descendant at the end of the window (for future mergers).  Its lineage is
its main progenitor branch (the past) and its descendants up to R (the future).  At a lineage node whose first
progenitor lies on the lineage, every merger counts; at one where the lineage enters as a next progenitor (S, or
its descendant, is the smaller partner), only that merger counts.  S is a merger when one of these has
ratio >= ``min_mass_ratio`` and a time within ``[t - before, t + after]`` of its snapshot's time t.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

#: The SubLink fields :func:`label_subhalo` reads.
SUBLINK_FIELDS = ("SubhaloID", "DescendantID", "FirstProgenitorID", "NextProgenitorID", "SnapNum", "SubfindID",
                  "SubhaloMassType")
#: The stars' column of ``SubhaloMassType`` (particle type 4).
STARS = 4


class TreeError(ValueError):
    """A merger tree cannot be read or does not hold the subhalo; the message says why."""


@dataclass(frozen=True)
class Merger:
    """One merger on a galaxy's lineage: the snapshot where it completes, its time and stellar mass ratio."""

    snap: int
    time_gyr: float
    ratio: float


@dataclass
class MergerHistory:
    """The mergers of one galaxy's lineage within its window, and its label (1: major merger, 0: none)."""

    stellar_mass: float  # at the snapshot, 1e10 Msun/h
    mergers: list[Merger] = field(default_factory=list)  # within the window, any ratio
    min_mass_ratio: float = 0.1

    @property
    def major(self) -> list[Merger]:
        return [m for m in self.mergers if m.ratio >= self.min_mass_ratio]

    @property
    def label(self) -> int:
        return int(bool(self.major))


def read_sublink_tree(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The :data:`SUBLINK_FIELDS` of a SubLink HDF5 tree; raises :class:`TreeError` naming what is wrong."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            missing = [name for name in SUBLINK_FIELDS if name not in f]
            if missing:
                raise TreeError(f"not a SubLink tree: no field {', '.join(missing)}")
            tree = {name: f[name][()] for name in SUBLINK_FIELDS}
    except OSError as exc:  # h5py: not HDF5, truncated
        raise TreeError(f"not a readable HDF5 file ({' '.join(str(exc).split())})") from None
    n = len(tree["SubhaloID"])
    if n == 0:
        raise TreeError("empty SubLink tree")
    for name, values in tree.items():
        if len(values) != n:
            raise TreeError(f"SubLink field {name} has {len(values)} rows, SubhaloID {n}")
    mass = tree["SubhaloMassType"]
    if mass.ndim != 2 or mass.shape[1] <= STARS:
        raise TreeError(f"SubhaloMassType has shape {mass.shape}, expected (N, 6)")
    if not np.isfinite(mass[:, STARS]).all():
        raise TreeError("non-finite stellar masses")
    return tree


def check_sublink_tree(path: str | os.PathLike) -> str | None:
    """None when ``path`` holds a readable SubLink tree, else the reason."""
    try:
        read_sublink_tree(path)
    except TreeError as exc:
        return str(exc)
    return None


class _Tree:
    """Row lookups of a SubLink tree by SubhaloID."""

    def __init__(self, tree: dict[str, np.ndarray]):
        self.t = tree
        self.row = {int(sid): i for i, sid in enumerate(tree["SubhaloID"])}
        self._max_mass: dict[int, float] = {}

    def get(self, field_name: str, row: int) -> int:
        return int(self.t[field_name][row])

    def linked(self, field_name: str, row: int) -> int | None:
        """The row that ``field_name`` (an ID field) of ``row`` points to; None for -1 or outside the tree."""
        return self.row.get(self.get(field_name, row))

    def max_past_mass(self, row: int) -> float:
        """Largest stellar mass along the main progenitor history of ``row`` (itself included)."""
        if row not in self._max_mass:
            branch, r = [], row
            while r is not None:
                branch.append(r)
                r = self.linked("FirstProgenitorID", r)
            self._max_mass[row] = float(self.t["SubhaloMassType"][branch, STARS].max())
        return self._max_mass[row]

    def merger_ratio(self, a: int, b: int) -> float | None:
        ma, mb = self.max_past_mass(a), self.max_past_mass(b)
        return min(ma, mb) / max(ma, mb) if max(ma, mb) > 0 else None


def label_subhalo(tree: dict[str, np.ndarray], *, snap: int, subfind_id: int, times_gyr: dict[int, float],
                  window_before_gyr: float, window_after_gyr: float, min_mass_ratio: float = 0.1) -> MergerHistory:
    """The mergers of subhalo ``subfind_id`` at ``snap`` within its window, from the SubLink ``tree`` of it or of
    a descendant (see the module docstring).  ``times_gyr``: cosmic time of each snapshot."""
    tr = _Tree(tree)
    found = np.flatnonzero((tree["SnapNum"] == snap) & (tree["SubfindID"] == subfind_id))
    if len(found) != 1:
        raise TreeError(f"subhalo {subfind_id} of snapshot {snap} is not in the tree (root: subhalo "
                        f"{int(tree['SubfindID'][0])} of snapshot {int(tree['SnapNum'][0])})")
    start = int(found[0])
    t0 = times_gyr[snap]
    lo, hi = t0 - window_before_gyr, t0 + window_after_gyr
    history = MergerHistory(float(tree["SubhaloMassType"][start, STARS]), min_mass_ratio=min_mass_ratio)

    def add(node: int, a: int, b: int) -> None:
        if (t := times_gyr.get(tr.get("SnapNum", node))) is None:
            raise TreeError(f"snapshot {tr.get('SnapNum', node)} of the tree is not in the snapshot list")
        ratio = tr.merger_ratio(a, b)
        if lo <= t <= hi and ratio is not None:
            history.mergers.append(Merger(tr.get("SnapNum", node), t, ratio))

    # (node, the lineage's progenitor of node): the past along the main branch, then the descendants
    steps, node = [], start
    while (fp := tr.linked("FirstProgenitorID", node)) is not None:
        steps.append((node, fp))
        node = fp
    child, node = start, tr.linked("DescendantID", start)
    while node is not None:
        steps.append((node, child))
        child, node = node, tr.linked("DescendantID", node)
    for node, lineage in steps:
        fp = tr.linked("FirstProgenitorID", node)
        if lineage == fp:
            nxt = tr.linked("NextProgenitorID", fp)
            while nxt is not None:
                add(node, fp, nxt)
                nxt = tr.linked("NextProgenitorID", nxt)
        else:  # the lineage merges into the first progenitor as the smaller partner
            add(node, fp, lineage)
    history.mergers.sort(key=lambda m: m.snap)
    return history
