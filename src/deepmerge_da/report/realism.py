"""How real the sim2real sets look: pixel statistics and a montage of real SDSS cutouts beside the synthetic sets.

Every set is a stack of ``(N, 3, H, W)`` images in the channel order (i, r, g) (R, G, B of the SDSS JPEGs) and in
its own units (8-bit counts for cutouts, nJy/pixel for the float mocks). The statistics (one value per set):

- ``skewness``: the mean of Z**3 over all pixels of all images and channels, where Z is the set standardised by
  its own per-channel mean and standard deviation over all its pixels (as the pipeline standardises a domain);
- ``fraction_above_2sigma``: the share of standardised pixel values above 2;
- ``peak_over_noise``: the luminance map is the sum of the three raw channels, its background the median of the
  :data:`BORDER_ROWS` top and bottom rows, the signal the luminance minus the background clipped at 0; the
  statistic is the median over images of max(signal) over the standard deviation of those border pixels;
- ``colour_i_over_g``: the mean raw value of channel i over the mean raw value of channel g;
- ``half_light_radius_px``: the median over images of the radius about the image centre ((W-1)/2, (H-1)/2) that
  encloses half of the signal (pixels ordered by the distance of their centres, linearly interpolated).

A set of fewer than :data:`MIN_OBJECTS` objects is refused: its statistics would be noise.
:func:`write_realism_report` writes the table (CSV and Markdown, saying which data made it), per-channel
histograms of the standardised pixels (CSV) and the montage (PNG): each set as the network sees it (standardised)
and with a per-image asinh display.
"""
from __future__ import annotations

import logging
import os
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from deepmerge_da.io.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

MIN_OBJECTS = 100
BORDER_ROWS = 5
CHANNELS = ("i", "r", "g")
STATISTICS = {
    "skewness": "skewness of standardised pixels",
    "fraction_above_2sigma": "fraction of standardised pixels > 2",
    "peak_over_noise": "peak / background noise (median)",
    "colour_i_over_g": "colour i/g (mean raw i / mean raw g)",
    "half_light_radius_px": "half-light radius (px, median)",
}
# Histogram bins of standardised pixel values (the bright tail is what differs between the sets).
HISTOGRAM_EDGES = np.linspace(-3.0, 12.0, 61)


class RealismError(ValueError):
    """A set cannot be compared (too few objects, wrong shape)."""


def check_set(name: str, images: np.ndarray) -> np.ndarray:
    """``images`` as float64 (N, 3, H, W); :class:`RealismError` naming the set unless it has >= MIN_OBJECTS."""
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise RealismError(f"set {name!r}: images must be (N, 3, H, W) in (i, r, g) order, got shape {arr.shape}")
    if arr.shape[0] < MIN_OBJECTS:
        raise RealismError(f"set {name!r} has {arr.shape[0]} objects: realism statistics need at least "
                           f"{MIN_OBJECTS} per set")
    return arr.astype(np.float64)


def standardise(images: np.ndarray) -> np.ndarray:
    """The set standardised by its own per-channel mean and standard deviation over all its pixels."""
    mean = images.mean(axis=(0, 2, 3), keepdims=True)
    std = images.std(axis=(0, 2, 3), keepdims=True)
    return (images - mean) / np.where(std > 0, std, 1.0)


def luminance_signal(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signal (N, H, W), border noise (N,)): the luminance above its border median, clipped at 0, and the
    standard deviation of the border rows of the luminance map."""
    lum = images.sum(axis=1)
    border = np.concatenate([lum[:, :BORDER_ROWS], lum[:, -BORDER_ROWS:]], axis=1).reshape(len(lum), -1)
    background = np.median(border, axis=1)
    return np.clip(lum - background[:, None, None], 0.0, None), border.std(axis=1)


def half_light_radii(signal: np.ndarray) -> np.ndarray:
    """Per image (N,): the radius about the image centre that encloses half of the signal (NaN without any)."""
    n, h, w = signal.shape
    yy, xx = np.mgrid[0:h, 0:w]
    radius = np.hypot(xx - (w - 1) / 2.0, yy - (h - 1) / 2.0).ravel()
    order = np.argsort(radius, kind="stable")
    r_sorted = radius[order]
    out = np.full(n, np.nan)
    for k in range(n):
        cumulative = np.cumsum(signal[k].ravel()[order])
        if cumulative[-1] > 0:
            out[k] = float(np.interp(0.5 * cumulative[-1], cumulative, r_sorted))
    return out


def realism_statistics(name: str, images: np.ndarray) -> dict[str, float]:
    """The statistics of the module docstring for one set (``name`` is used in errors)."""
    arr = check_set(name, images)
    z = standardise(arr)
    signal, noise = luminance_signal(arr)
    peak = signal.max(axis=(1, 2)) / np.where(noise > 0, noise, np.nan)
    mean_g = arr[:, 2].mean()
    return {
        "skewness": float(np.mean(z**3)),
        "fraction_above_2sigma": float(np.mean(z > 2.0)),
        "peak_over_noise": float(np.nanmedian(peak)),
        "colour_i_over_g": float(arr[:, 0].mean() / mean_g) if mean_g else float("nan"),
        "half_light_radius_px": float(np.nanmedian(half_light_radii(signal))),
    }


def channel_histograms(name: str, images: np.ndarray) -> pd.DataFrame:
    """Per-channel density histograms of the standardised pixels (values outside the edges are not counted)."""
    z = standardise(check_set(name, images))
    rows = []
    for c, band in enumerate(CHANNELS):
        density, _ = np.histogram(z[:, c], bins=HISTOGRAM_EDGES, density=False)
        density = density / z[:, c].size / np.diff(HISTOGRAM_EDGES)
        rows += [{"set": name, "channel": band, "bin_lo": lo, "bin_hi": hi, "density": d}
                 for lo, hi, d in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:], density, strict=True)]
    return pd.DataFrame(rows)


def realism_table(sets: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per set: its object count and statistics."""
    return pd.DataFrame([{"set": name, "n_objects": int(len(images)), **realism_statistics(name, images)}
                         for name, images in sets.items()])


def summarise_rejections(rejected) -> list[str]:
    """Lines 'reason: count (names)' for the (relative path, reason) pairs a cutout loader rejected."""
    by_reason: dict[str, list[str]] = {}
    for name, reason in rejected:
        by_reason.setdefault(reason, []).append(name)
    counts = Counter({reason: len(names) for reason, names in by_reason.items()})
    lines = []
    for reason, count in counts.most_common():
        names = by_reason[reason]
        shown = ", ".join(names[:8]) + (f", ... ({count - 8} more)" if count > 8 else "")
        lines.append(f"{reason}: {count} ({shown})")
    return lines


def to_markdown(table: pd.DataFrame, data_description: str, notes=()) -> str:
    """The table with statistics as rows and sets as columns, the data it came from and any notes."""
    header = ["statistic", *table["set"]]
    lines = ["# Realism of the sim2real sets", "", f"Data: {data_description}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             "| objects | " + " | ".join(str(n) for n in table["n_objects"]) + " |"]
    for key, label in STATISTICS.items():
        lines.append(f"| {label} | " + " | ".join(f"{v:.3g}" for v in table[key]) + " |")
    lines += ["", "Definitions: deepmerge_da.report.realism (each set standardised by its own per-channel mean and "
                  "std)."]
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def _asinh_display(image: np.ndarray, softening: float = 0.05) -> np.ndarray:
    """(3, H, W) raw -> (H, W, 3) in [0, 1]: asinh of the image over its 99.5th percentile (sky median at 0)."""
    x = image - np.median(image, axis=(1, 2), keepdims=True)
    scale = np.percentile(x, 99.5)
    scale = scale if scale > 0 else 1.0
    return np.moveaxis(np.clip(np.arcsinh(x / (softening * scale)) / np.arcsinh(1.0 / softening), 0, 1), 0, -1)


def _network_display(z: np.ndarray, lo: float = -1.0, hi: float = 6.0) -> np.ndarray:
    """(3, H, W) standardised -> (H, W, 3) in [0, 1]: a linear map of [lo, hi] sigma, the same for every set."""
    return np.moveaxis(np.clip((z - lo) / (hi - lo), 0.0, 1.0), 0, -1)


def plot_montage(sets: dict[str, np.ndarray], out_png: str | os.PathLike, data_description: str,
                 n_examples: int = 6, seed: int = 0) -> tuple[int, int]:
    """Rows: each set as the network sees it (standardised, -1..6 sigma linear) and with an asinh display;
    columns: ``n_examples`` images drawn at random (seeded) from the set; R, G, B = i, r, g."""
    from deepmerge_da.report.figures import FOOTNOTE_PX, HEADER_PX, LABEL_PX, add_footnote, new_figure, save_figure

    panel = 120
    n_rows = 2 * len(sets)
    fig = new_figure(LABEL_PX + n_examples * panel, HEADER_PX + n_rows * panel + FOOTNOTE_PX)
    axes = fig.subplots(n_rows, n_examples, squeeze=False)
    rng = np.random.default_rng(seed)
    for s, (name, images) in enumerate(sets.items()):
        arr = check_set(name, images)
        z = standardise(arr)
        picks = rng.choice(len(arr), size=min(n_examples, len(arr)), replace=False)
        for j, k in enumerate(picks):
            for row, shown in ((2 * s, _network_display(z[k])), (2 * s + 1, _asinh_display(arr[k]))):
                ax = axes[row, j]
                ax.imshow(shown, interpolation="nearest", origin="lower")
                ax.set_xticks([])
                ax.set_yticks([])
        label = textwrap.fill(name, 22)
        axes[2 * s, 0].set_ylabel(f"{label}\nstandardised", fontsize=5)
        axes[2 * s + 1, 0].set_ylabel(f"{label}\nasinh", fontsize=5)
    add_footnote(fig, data_description)
    return save_figure(fig, out_png)


def write_realism_report(sets: dict[str, np.ndarray], out_dir: str | os.PathLike, data_description: str,
                         notes=()) -> pd.DataFrame:
    """table.csv, table.md, histograms.csv and montage.png of ``sets`` under ``out_dir``; returns the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = realism_table(sets)
    with atomic_path(out / "table.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_text_atomic(out / "table.md", to_markdown(table, data_description, notes))
    histograms = pd.concat([channel_histograms(name, images) for name, images in sets.items()], ignore_index=True)
    with atomic_path(out / "histograms.csv") as tmp:
        histograms.to_csv(tmp, index=False, float_format="%.6g")
    plot_montage(sets, out / "montage.png", data_description)
    log.info("realism of %s -> %s", ", ".join(sets), out)
    return table


def real_sets(cutout_dir: str | os.PathLike, *, size: int = 75, max_nonmergers: int | None = None,
              seed: int = 0) -> tuple[dict[str, np.ndarray], list[str]]:
    """The real post-mergers and non-mergers of a cutout directory (read by
    :func:`deepmerge_da.data.sdss_cutouts.load_cutout_dir`) and lines saying what it rejected or did not list."""
    from deepmerge_da.data.sdss_cutouts import load_cutout_dir

    cut = load_cutout_dir(cutout_dir, size=size, max_nonmergers=max_nonmergers, seed=seed)
    notes = [f"real cutouts rejected, {reason}" for reason in summarise_rejections(cut.rejected)]
    if cut.unlisted:
        notes.append(f"real cutout files without a catalogue row: {len(cut.unlisted)} "
                     f"({', '.join(cut.unlisted[:8])}{', ...' if len(cut.unlisted) > 8 else ''})")
    for note in notes:
        log.warning("%s: %s", cutout_dir, note)
    sets = {"real SDSS post-mergers": cut.images[cut.labels == 1], "real SDSS non-mergers": cut.images[cut.labels == 0]}
    return sets, notes


def synthetic_sets(params: dict, *, seed: int, n_objects: int, source_path: str | os.PathLike | None = None,
                   threads: int = 1) -> dict[str, np.ndarray]:
    """The synthetic sim2real source (read from ``source_path``, the workflow's raw source set, or rendered: its
    first ``n_objects``) and a rendered sample of ``n_objects`` of the synthetic SDSS-like target (data seed + 1,
    as the workflow's), both in (i, r, g) order."""
    from deepmerge_da.data.synthetic import Sim2RealParams, render_sim2real_source, render_sim2real_target

    p = Sim2RealParams.from_dict(params)
    if source_path is not None:
        from deepmerge_da.data.preprocess import reorder_filters
        from deepmerge_da.io.hdf5 import read_image_set

        source = reorder_filters(read_image_set(source_path), list(CHANNELS)).images[:n_objects]
    else:
        rendered = render_sim2real_source(p.replace(source_n_objects=n_objects), seed=seed, threads=threads,
                                          progress=False)
        source = rendered.images[:, [list(rendered.filters).index(b) for b in CHANNELS]]
    target = render_sim2real_target(p.replace(target_n_objects=n_objects), seed=seed + 1, threads=threads,
                                    progress=False).images
    return {"synthetic source": source, "synthetic SDSS-like target": target}
