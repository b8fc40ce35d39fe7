"""The paper's summary figures, drawn from the workflow's own outputs (metrics, predictions, histories),
and the drawing helpers every figure shares; figures of images and models are in :mod:`.image_figures`.

- :func:`plot_metric_bars` - Fig. 3/4 left: the six test metrics per method, source dashed, target solid;
- :func:`plot_roc` - Fig. 3/4 right: ROC curves, AUC in the legend;
- :func:`plot_score_histograms` - Fig. B1/B2: output score of the true class, per method and domain;
- :func:`plot_training_curves` - loss terms, accuracies and learning rate per epoch of one run.

Every figure has a fixed pixel size (a function of the number of panels only, given in each docstring;
``DPI`` dots per inch), carries no title or caption except a small footnote ``data_description`` saying
which data produced it, and is written atomically as PNG (and PDF where a path is given). Figures are
built as bare :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas: no pyplot state, no
global backend switch, nothing left open. Every function returns the PNG's (width, height) in pixels.
This module imports neither PyTorch nor scikit-learn at import time: plotting jobs start in a second.
"""
from __future__ import annotations

import json
import logging
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from deepmerge_da.io.atomic import atomic_path
from deepmerge_da.report.metrics import METRICS

log = logging.getLogger(__name__)

DPI = 120
PANEL_PX = 192        # one image panel (1.6 in)
LABEL_PX = 108        # left margin for row labels of image grids
HEADER_PX = 36        # top margin for column titles of image grids
FOOTNOTE_PX = 42      # the footnote band at the bottom of every figure
FOOTNOTE_FONTSIZE = (6.0, 5.0)  # tried in turn until the text fits in the band

# The paper's method colours (Fig. 3: noDA navy, MMD purple, MMD+F dark purple, ADA yellow, ADA+F pink),
# used in the order the methods are given, then matplotlib's defaults.
METHOD_COLOURS = ("#1b2a6b", "#9b59b6", "#4a0e5c", "#e3b505", "#e377c2",
                  "#2ca02c", "#d62728", "#17becf", "#8c564b", "#7f7f7f")
# Fig. B1: source mergers dark purple / non-mergers yellow, target mergers navy / non-mergers pink.
SCORE_COLOURS = {("source", 1): "#3b0f4f", ("source", 0): "#f2c200",
                 ("target", 1): "#1b2a6b", ("target", 0): "#f08bbd"}
CLASS_COLOURS = {1: "#d62728", 0: "#1f4fd6"}  # Fig. 5: red mergers, blue non-mergers
DOMAIN_COLOURS = {"source": "#f28e2b", "target": "#3b3b98"}
CLASS_NAMES = {1: "merger", 0: "non-merger"}
METRIC_NAMES = {"auc": "AUC", "accuracy": "Accuracy", "precision": "Precision", "recall": "Recall",
                "f1": "F1", "brier": "Brier"}
DOMAINS = ("source", "target")


# --------------------------------------------------------------------------- shared helpers

def log_stretch(image: np.ndarray, dynamic_range: float = 1e3, upper_percentile: float = 99.9) -> np.ndarray:
    """The paper's logarithmic display stretch, per image and per filter, into [0, 1].

    Over the last two axes (the pixels) of ``image`` (H, W) or (C, H, W): ``hi`` is the
    ``upper_percentile`` of the flux, ``lo = hi / dynamic_range``; the flux is clipped to [lo, hi] (sky
    noise below ``lo`` and negative pixels go black) and ``(log10(flux) - log10(lo)) / log10(dynamic_range)``
    is returned. A filter without positive flux comes out black.
    """
    x = np.asarray(image, dtype=np.float64)
    hi = np.percentile(x, upper_percentile, axis=(-2, -1), keepdims=True)
    peak = x.max(axis=(-2, -1), keepdims=True)
    hi = np.where(hi > 0, hi, np.where(peak > 0, peak, 1.0))
    lo = hi / dynamic_range
    out = (np.log10(np.clip(x, lo, hi)) - np.log10(lo)) / np.log10(dynamic_range)
    return np.where(np.broadcast_to(peak > 0, x.shape), out, 0.0).astype(np.float32)


def display_image(image: np.ndarray) -> np.ndarray:
    """A (C, H, W) image in physical units as something ``imshow`` draws: log-stretched, an RGB (H, W, 3)
    composite when C = 3 (the file's filters in order blue, green, red), else (C, H, W) single filters."""
    stretched = log_stretch(image)
    return np.moveaxis(stretched[::-1], 0, -1) if stretched.shape[0] == 3 else stretched


def show_image(ax, image: np.ndarray, channel: int | None = None) -> None:
    shown = display_image(image)
    if shown.ndim == 3 and shown.shape[-1] != 3:
        shown = shown[channel or 0]
    ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", origin="lower")
    ax.set_xticks([])
    ax.set_yticks([])


def new_figure(width_px: int, height_px: int, layout: bool = True) -> Figure:
    """A bare Agg figure of exactly ``width_px`` x ``height_px`` pixels at :data:`DPI`, with constrained
    layout kept clear of the footnote band."""
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained" if layout else None)
    FigureCanvasAgg(fig)
    if layout:
        fig.get_layout_engine().set(rect=(0.0, FOOTNOTE_PX / height_px, 1.0, 1.0 - FOOTNOTE_PX / height_px))
    return fig


def add_footnote(fig: Figure, data_description: str) -> None:
    """Draw ``data_description`` small, bottom left, wrapped to the figure's width inside the footnote band."""
    width_pt = fig.get_figwidth() * 72.0 * 0.96
    band_pt = FOOTNOTE_PX / DPI * 72.0
    text = " ".join(str(data_description).split())
    for size in FOOTNOTE_FONTSIZE:
        lines = textwrap.wrap(text, width=max(20, int(width_pt / (0.55 * size)))) or [""]
        max_lines = max(1, int(band_pt / (1.25 * size)))
        if len(lines) <= max_lines:
            break
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:-1] + "\u2026"
    fig.text(0.01, 0.5 * FOOTNOTE_PX / (fig.get_figheight() * DPI), "\n".join(lines), fontsize=size,
             color="0.3", ha="left", va="center", linespacing=1.1)


def save_figure(fig: Figure, out_png: str | os.PathLike, out_pdf: str | os.PathLike | None = None) -> tuple[int, int]:
    """Write ``fig`` atomically as PNG (and PDF); release it; return the PNG size in pixels."""
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    if out_pdf:
        with atomic_path(out_pdf) as tmp:
            fig.savefig(tmp, format="pdf", dpi=DPI, metadata={"CreationDate": None, "Producer": None})
    size = tuple(int(v) for v in fig.canvas.get_width_height())
    fig.clear()
    return size


def _method_colour(i: int) -> str:
    return METHOD_COLOURS[i % len(METHOD_COLOURS)]


# --------------------------------------------------------------------------- data helpers

def _read_metrics(paths) -> dict[str, dict[str, tuple[float, float]]]:
    """{domain: {metric: (mean, std)}} over one or several metrics.json files."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    runs = [json.loads(Path(p).read_text()) for p in paths]
    out = {}
    for domain in DOMAINS:
        out[domain] = {}
        for m in METRICS:
            values = np.array([float(r[domain][m]) for r in runs if domain in r], dtype=float)
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            out[domain][m] = (float(np.mean(values)) if len(values) else float("nan"), std)
    return out


def _read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"object_id": str})
    missing = {"domain", "label", "p_merger"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return frame


# --------------------------------------------------------------------------- figures

def plot_metric_bars(metrics: dict[str, str | list[str]], out_png: str, out_pdf: str | None,
                     data_description: str) -> tuple[int, int]:
    """Fig. 3/4 left: grouped bars of AUC, accuracy, precision, recall, F1 and Brier score per method label;
    source bars hatched with a dashed outline, target bars solid. A label mapping to several metrics.json
    files (seeds) shows their mean with the standard deviation as error bar. Size 1080 x 522 px."""
    values = {label: _read_metrics(paths) for label, paths in metrics.items()}
    fig = new_figure(1080, 480 + FOOTNOTE_PX)
    ax = fig.subplots()
    n = max(1, len(values))
    width = 0.84 / (2 * n)
    x = np.arange(len(METRICS))
    for i, stats in enumerate(values.values()):
        colour = _method_colour(i)
        for j, domain in enumerate(DOMAINS):
            means = [stats[domain][m][0] for m in METRICS]
            stds = [stats[domain][m][1] for m in METRICS]
            pos = x - 0.42 + width * (2 * i + j + 0.5)
            style = (dict(facecolor="white", edgecolor=colour, hatch="///", linestyle="--", linewidth=1.2)
                     if domain == "source" else dict(facecolor=colour, edgecolor=colour, linewidth=1.2))
            ax.bar(pos, means, width, yerr=stds if any(stds) else None, capsize=2,
                   error_kw={"elinewidth": 0.8, "ecolor": "0.2"}, **style)
    ax.set_xticks(x, [METRIC_NAMES[m] for m in METRICS])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test score")
    ax.grid(axis="y", alpha=0.3)
    handles = [Patch(facecolor=_method_colour(i), label=label) for i, label in enumerate(values)]
    handles += [Patch(facecolor="white", edgecolor="0.3", hatch="///", linestyle="--", label="source"),
                Patch(facecolor="0.3", label="target")]
    ax.legend(handles=handles, fontsize=8, ncol=min(len(handles), 7), loc="upper center",
              bbox_to_anchor=(0.5, 1.12), frameon=False)
    add_footnote(fig, data_description)
    return save_figure(fig, out_png, out_pdf)


def plot_roc(predictions: dict[str, str], out_png: str, out_pdf: str | None, data_description: str) -> tuple[int, int]:
    """Fig. 3/4 right: ROC curves per method label (predictions.csv), source dashed, target solid, the AUC of
    each curve in the legend. Size 660 x 642 px."""
    from sklearn.metrics import auc, roc_curve

    fig = new_figure(660, 600 + FOOTNOTE_PX)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=0.8)
    for i, (label, path) in enumerate(predictions.items()):
        frame = _read_predictions(path)
        for domain, style in (("source", "--"), ("target", "-")):
            rows = frame[frame["domain"] == domain]
            if rows["label"].nunique() < 2:
                log.warning("%s: %s has only one class; no ROC curve", path, domain)
                continue
            fpr, tpr, _ = roc_curve(rows["label"].to_numpy(), rows["p_merger"].to_numpy())
            ax.plot(fpr, tpr, linestyle=style, color=_method_colour(i), linewidth=1.4,
                    label=f"{label} {domain} (AUC {auc(fpr, tpr):.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    add_footnote(fig, data_description)
    return save_figure(fig, out_png, out_pdf)


def plot_score_histograms(predictions: dict[str, str], out_png: str, out_pdf: str | None,
                          data_description: str) -> tuple[int, int]:
    """Fig. B1/B2: per method label a row with a source and a target panel: histograms of the output score
    of the true class (p_merger for mergers, 1 - p_merger for non-mergers), one y range for all panels.
    Size 816 x (48 + 240 * methods + FOOTNOTE_PX) px."""
    n = max(1, len(predictions))
    fig = new_figure(816, 48 + 240 * n + FOOTNOTE_PX)
    axes = fig.subplots(n, 2, squeeze=False, sharex=True, sharey=True)
    bins = np.linspace(0.0, 1.0, 21)
    for r, (label, path) in enumerate(predictions.items()):
        frame = _read_predictions(path)
        for c, domain in enumerate(DOMAINS):
            ax = axes[r, c]
            rows = frame[frame["domain"] == domain]
            for cls in (1, 0):
                p = rows.loc[rows["label"] == cls, "p_merger"].to_numpy(dtype=float)
                score = p if cls == 1 else 1.0 - p
                colour = SCORE_COLOURS[(domain, cls)]
                ax.hist(score, bins=bins, color=colour, alpha=0.6, label=f"{CLASS_NAMES[cls]} (n={len(p)})")
                ax.hist(score, bins=bins, color=colour, histtype="step", linewidth=1.2)
            ax.legend(fontsize=7, loc="upper left")
            ax.set_title(f"{label}: {domain}", fontsize=9)
            if c == 0:
                ax.set_ylabel("images")
            if r == n - 1:
                ax.set_xlabel("score of the true class")
    add_footnote(fig, data_description)
    return save_figure(fig, out_png, out_pdf)


def _history_groups(columns) -> dict[str, list[str]]:
    """Columns of history.csv by panel: loss terms, accuracies, learning rates (robust to new columns)."""
    cols = [c for c in columns if c not in ("epoch", "seconds")]
    accuracy = [c for c in cols if c.endswith("_accuracy")]
    lr = [c for c in cols if c == "lr" or c.startswith("lr_")]
    loss = [c for c in cols if c not in accuracy and c not in lr
            and (c.startswith("train_") or c.endswith("_loss"))]
    return {"loss": loss, "accuracy": accuracy, "lr": lr}


def _curve_style(column: str) -> str:
    prefix = column.split("_", 1)[0]
    return {"train": "-", "val": "--", "test": ":", "sel": "-."}.get(prefix, "-")


def plot_training_curves(history_csv: str, out_png: str, title: str, data_description: str) -> tuple[int, int]:
    """Three panels of one run's history.csv: loss terms (train_* and *_loss; log y when all positive),
    accuracies (*_accuracy: train solid, val dashed, test dotted, sel dash-dot) and the learning rate.
    Size 1560 x 474 px (``title`` at the top)."""
    history = pd.read_csv(history_csv)
    groups = _history_groups(history.columns)
    epoch = history["epoch"].to_numpy() if "epoch" in history else np.arange(len(history))
    fig = new_figure(1560, 432 + FOOTNOTE_PX)
    axes = fig.subplots(1, 3)
    for ax, (name, columns) in zip(axes, groups.items(), strict=True):
        for i, column in enumerate(columns):
            y = pd.to_numeric(history[column], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(y).any():
                continue
            ax.plot(epoch, y, linestyle=_curve_style(column), marker="." if len(y) < 30 else None,
                    color=f"C{i % 10}", label=column)
        values = pd.to_numeric(history[columns].stack(), errors="coerce").to_numpy(dtype=float) if columns else []
        values = np.asarray(values)[np.isfinite(values)]
        if len(values) and (values > 0).all() and name in ("loss", "lr"):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "loss", "accuracy": "accuracy", "lr": "learning rate"}[name])
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    add_footnote(fig, data_description)
    return save_figure(fig, out_png)


