"""Figures of images and of trained networks, drawn from the workflow's HDF5 sets and checkpoints.

- :func:`plot_examples` - Fig. 1/2: example images of both domains, log stretch;
- :func:`plot_tsne` - Fig. 5: t-SNE of the feature space, by domain and by class;
- :func:`plot_gradcam` - Fig. 6/7: Grad-CAM maps (merger class) of the same images for several models.

Sizes, footnotes and saving follow :mod:`.figures`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.lines import Line2D

from deepmerge_da.io.checkpoint import load_model
from deepmerge_da.nn.models import build_network
from deepmerge_da.report.figures import (
    CLASS_COLOURS,
    CLASS_NAMES,
    DOMAIN_COLOURS,
    DOMAINS,
    FOOTNOTE_PX,
    HEADER_PX,
    LABEL_PX,
    PANEL_PX,
    add_footnote,
    new_figure,
    save_figure,
    show_image,
)
from deepmerge_da.report.gradcam import gradcam_maps
from deepmerge_da.training.runtime import load_split, predict_logits

log = logging.getLogger(__name__)


@dataclass
class DomainSample:
    """One split of one domain: standardised tensors (what the networks see) and the way back to flux."""

    images: torch.Tensor  # standardised with the file's training statistics, as training does
    labels: np.ndarray
    object_id: np.ndarray
    attrs: dict

    def physical(self, rows) -> np.ndarray:
        """Images ``rows`` in physical units (undoing the standardisation)."""
        mean = np.asarray(self.attrs["channel_mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.attrs["channel_std"], dtype=np.float32).reshape(1, -1, 1, 1)
        return self.images[np.asarray(rows, dtype=np.int64)].numpy() * std + mean

    @property
    def filters(self) -> list[str]:
        return [str(f) for f in self.attrs.get("filters", [])] or [f"ch{i}" for i in range(self.images.shape[1])]


def load_domain(path: str | os.PathLike, split: str = "test") -> DomainSample:
    """One split of a prepared set via :func:`deepmerge_da.training.runtime.load_split` (training's standardisation)."""
    data = load_split(path, split)
    return DomainSample(data.images, data.labels.numpy(), np.asarray(data.object_id).astype(str), data.attrs)


def select_pairs(source: DomainSample, target: DomainSample, n: int, rng: np.random.Generator,
                 label: int | None = None, target_order: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``n`` source images (of class ``label``, or any) chosen by ``rng``, and the target rows of the
    *same objects* where the target has them (sim2sim: the same galaxies, pristine vs noisy).

    Source rows are the first copy of each object id (augmented copies share the id). Sources without a
    counterpart get other target images of the class, chosen by ``rng`` (``target_order="random"``) or
    the first ones in file order (``"first"``).
    """
    def candidates(d: DomainSample) -> np.ndarray:
        _, first = np.unique(d.object_id, return_index=True)
        first = np.sort(first)
        return first if label is None else first[d.labels[first] == label]

    src_pool, tgt_pool = candidates(source), candidates(target)
    src = np.sort(rng.choice(src_pool, size=min(n, len(src_pool)), replace=False))
    where = {oid: row for row, oid in zip(tgt_pool, target.object_id[tgt_pool], strict=True)}
    tgt = np.array([where.get(oid, -1) for oid in source.object_id[src]], dtype=np.int64)
    spare = np.setdiff1d(tgt_pool, tgt)
    if target_order == "random":
        spare = rng.permutation(spare)
    missing = np.flatnonzero(tgt < 0)
    tgt[missing[:len(spare)]] = spare[:len(missing)]
    keep = tgt >= 0
    return src[keep], tgt[keep]


def _model(checkpoint: str | None, network: str, in_channels: int, seed: int) -> tuple[torch.nn.Module, dict]:
    """A trained model from ``checkpoint``, or (None) a randomly initialised ``network`` seeded by ``seed``."""
    if checkpoint is None:
        torch.manual_seed(seed)
        return build_network(network, in_channels=in_channels).eval(), {}
    return load_model(checkpoint)


def _check_statistics(meta: dict, source: DomainSample, target: DomainSample, checkpoint: str) -> None:
    """Warn when the checkpoint was trained on statistics of neither file (another data preparation)."""
    trained = meta.get("input", {}).get("trained_on", {}).get("channel_mean")
    if trained is None:
        return
    if not any(np.allclose(trained, np.asarray(d.attrs["channel_mean"]), rtol=1e-4) for d in (source, target)):
        log.warning("%s was trained on channel means %s, which match neither data file", checkpoint, trained)


# --------------------------------------------------------------------------- figures

def plot_examples(source_h5: str, target_h5: str, out_png: str, out_pdf: str | None, data_description: str,
                  n_per_class: int = 3, split: str = "test", seed: int = 0) -> tuple[int, int]:
    """Fig. 1/2: rows source merger, source non-merger, target merger, target non-merger; ``n_per_class``
    images each (RGB composite of 3 filters with the log stretch, else one column per filter), the same
    object ids in source and target where the pair shares its galaxies.

    Size: (LABEL_PX + columns * PANEL_PX) x (HEADER_PX + 4 * PANEL_PX + FOOTNOTE_PX), columns =
    ``n_per_class`` x (1 if 3 filters else number of filters).
    """
    source, target = load_domain(source_h5, split), load_domain(target_h5, split)
    rng = np.random.default_rng(seed)
    per_image = 1 if source.images.shape[1] == 3 else source.images.shape[1]
    n_cols = n_per_class * per_image
    fig = new_figure(LABEL_PX + n_cols * PANEL_PX, HEADER_PX + 4 * PANEL_PX + FOOTNOTE_PX)
    axes = fig.subplots(4, n_cols, squeeze=False)
    rows = {}
    for label in (1, 0):
        rows[("source", label)], rows[("target", label)] = select_pairs(source, target, n_per_class, rng, label)
    data = {"source": source, "target": target}
    for r, (domain, label) in enumerate([("source", 1), ("source", 0), ("target", 1), ("target", 0)]):
        d, chosen = data[domain], rows[(domain, label)]
        images = d.physical(chosen)
        for c in range(n_cols):
            ax = axes[r, c]
            k, channel = divmod(c, per_image)
            if k >= len(chosen):
                ax.set_axis_off()
                continue
            show_image(ax, images[k], channel)
            name = d.object_id[chosen[k]]
            ax.set_title(name if per_image == 1 else f"{name} {d.filters[channel]}", fontsize=6, pad=2)
        axes[r, 0].set_ylabel(f"{domain}\n{CLASS_NAMES[label]}", fontsize=9)
    rgb = "RGB = " + "/".join(reversed(source.filters)) if per_image == 1 else "single filters"
    add_footnote(fig, f"{data_description} [{rgb}, log stretch per image and filter]")
    return save_figure(fig, out_png, out_pdf)


def _tsne_embedding(features: np.ndarray, seed: int) -> np.ndarray:
    """2-d t-SNE of ``features``, on one thread: reproducible, and on a busy machine many times faster than
    OpenMP threads competing for cores (600 points: about 5 s against 40 s on 2 shared cores)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    perplexity = min(30.0, (len(features) - 1) / 3.0)
    with threadpool_limits(limits=1):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def plot_tsne(checkpoints: dict[str, str | None], source_h5: str, target_h5: str, out_png: str,
              out_pdf: str | None, data_description: str, n_per_domain: int = 300, split: str = "test",
              seed: int = 0, network: str = "deepmerge") -> tuple[int, int]:
    """Fig. 5: per label a row of two t-SNE panels of the features of ``n_per_domain`` source and target
    images (the same images for every label), coloured by domain and by class. ``None`` = before training:
    ``build_network(network)`` initialised after ``torch.manual_seed(seed)``. Images are standardised per
    domain with that file's training statistics, as training and evaluation do. t-SNE: perplexity
    min(30, (n - 1) / 3), PCA initialisation, ``random_state=seed``.
    Size 792 x (36 + 360 * labels + FOOTNOTE_PX) px."""
    source, target = load_domain(source_h5, split), load_domain(target_h5, split)
    src, tgt = select_pairs(source, target, n_per_domain, np.random.default_rng(seed))
    images = torch.cat([source.images[src], target.images[tgt]])
    domain = np.array(["source"] * len(src) + ["target"] * len(tgt))
    labels = np.concatenate([source.labels[src], target.labels[tgt]])
    order = np.random.default_rng(seed).permutation(len(images))
    n = max(1, len(checkpoints))
    fig = new_figure(792, 36 + 360 * n + FOOTNOTE_PX)
    axes = fig.subplots(n, 2, squeeze=False)
    for r, (label, checkpoint) in enumerate(checkpoints.items()):
        model, meta = _model(checkpoint, network, source.images.shape[1], seed)
        if checkpoint is not None:
            _check_statistics(meta, source, target, checkpoint)
        _, features = predict_logits(model, images, with_features=True)
        xy = _tsne_embedding(features.numpy().astype(np.float64), seed)
        for ax, colours in ((axes[r, 0], {d: (domain == d, DOMAIN_COLOURS[d]) for d in DOMAINS}),
                            (axes[r, 1], {CLASS_NAMES[c]: (labels == c, CLASS_COLOURS[c]) for c in (1, 0)})):
            point_colour = np.empty(len(xy), dtype=object)
            for mask, colour in colours.values():
                point_colour[mask] = colour
            # One scatter in a random order, so that neither group is always drawn on top of the other.
            ax.scatter(xy[order, 0], xy[order, 1], s=6, c=list(point_colour[order]), alpha=0.6, linewidths=0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.legend(handles=[Line2D([], [], marker="o", linestyle="", color=colour, markersize=4, label=name)
                               for name, (_, colour) in colours.items()], fontsize=7, loc="best")
        axes[r, 0].set_ylabel(label, fontsize=10)
    axes[0, 0].set_title("by domain", fontsize=9)
    axes[0, 1].set_title("by class", fontsize=9)
    add_footnote(fig, data_description)
    return save_figure(fig, out_png, out_pdf)


def plot_gradcam(checkpoints: dict[str, str], source_h5: str, target_h5: str, out_png: str, out_pdf: str | None,
                 data_description: str, n_images: int = 3, split: str = "test", seed: int = 0) -> tuple[int, int]:
    """Fig. 6/7: ``n_images`` mergers chosen by ``seed`` from the source split and the same objects in the
    target (else its first mergers), each a source row and a target row; columns: the image (log stretch),
    then per label the Grad-CAM map of the merger class at ``model.last_conv`` over the image, with the
    model's p(merger). Size (LABEL_PX + (1 + labels) * PANEL_PX) x (HEADER_PX + 2 * n_images * PANEL_PX +
    FOOTNOTE_PX)."""
    source, target = load_domain(source_h5, split), load_domain(target_h5, split)
    src, tgt = select_pairs(source, target, n_images, np.random.default_rng(seed), label=1, target_order="first")
    samples = [("source", source, src), ("target", target, tgt)]
    maps, probs = {}, {}
    for label, checkpoint in checkpoints.items():
        model, meta = load_model(checkpoint)
        _check_statistics(meta, source, target, checkpoint)
        for name, d, rows in samples:
            x = d.images[rows]
            maps[(label, name)] = gradcam_maps(model, x, target_class=1)
            probs[(label, name)] = torch.softmax(predict_logits(model, x), 1)[:, 1].numpy()
    n_rows, n_cols = 2 * len(src), 1 + len(checkpoints)
    fig = new_figure(LABEL_PX + n_cols * PANEL_PX, HEADER_PX + max(1, n_rows) * PANEL_PX + FOOTNOTE_PX)
    axes = fig.subplots(max(1, n_rows), n_cols, squeeze=False)
    for k in range(len(src)):
        for j, (name, d, rows) in enumerate(samples):
            r = 2 * k + j
            image = d.physical(rows[k:k + 1])[0]
            show_image(axes[r, 0], image)
            axes[r, 0].set_ylabel(f"{name}\n{d.object_id[rows[k]]}", fontsize=7)
            for c, label in enumerate(checkpoints, start=1):
                ax = axes[r, c]
                show_image(ax, image)
                ax.imshow(maps[(label, name)][k], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0,
                          interpolation="bilinear", origin="lower")
                ax.text(0.03, 0.97, f"p(merger) {probs[(label, name)][k]:.2f}", transform=ax.transAxes,
                        fontsize=6, color="white", va="top", ha="left")
    axes[0, 0].set_title("image", fontsize=9)
    for c, label in enumerate(checkpoints, start=1):
        axes[0, c].set_title(f"{label}", fontsize=9)
    add_footnote(fig, f"{data_description} [Grad-CAM of the merger class at the last conv layer]")
    return save_figure(fig, out_png, out_pdf)
