"""Learning-rate range scan (Appendix A; Smith & Topin 2019).

The learning rate grows geometrically from ``lr_min`` to ``lr_max`` over a few epochs of ordinary
training; the mean total loss of each epoch is recorded against the learning rate it ended with. The
minimum of that curve is the paper's choice of the one-cycle maximum, and a tenth of it the minimum.
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from deepmerge_da.io.atomic import atomic_path
from deepmerge_da.nn.methods import TransferObjective, uses_target
from deepmerge_da.nn.models import build_network
from deepmerge_da.training.loop import TRAINING_MEMORY_FORMAT, make_optimizer, train_one_epoch
from deepmerge_da.training.runtime import load_split, resolve_device, seed_everything


def lr_range_scan(*, source: str, target: str, network: str, method: str, hp: dict, out_csv: str,
                  epochs: int = 8, lr_min: float = 1e-6, lr_max: float = 1e-1, batch_size: int = 128,
                  seed: int = 1, threads: int = 1, device: str = "cpu", plot_path: str | None = None) -> pd.DataFrame:
    """Run the scan and write ``out_csv`` (columns epoch, lr, loss; optionally a PNG of the curve)."""
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got {lr_min} and {lr_max}")
    torch.set_num_threads(max(1, threads))
    seed_everything(seed)
    dev = resolve_device(device)
    src, tgt = load_split(source, "train", dev), load_split(target, "train", dev)
    model = build_network(network, in_channels=src.images.shape[1]).to(dev, memory_format=TRAINING_MEMORY_FORMAT)
    objective = TransferObjective(method, model.feature_dim, hp).to(dev)
    steps_per_epoch = max(1, math.ceil(len(src) / batch_size))
    optimizer, _ = make_optimizer(model, objective, dict(hp, lr=lr_min), steps_per_epoch)
    total = epochs * steps_per_epoch
    growth = lambda step: (lr_max / lr_min) ** (min(step, total) / total)  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, growth)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for epoch in range(epochs):
        terms = train_one_epoch(model, objective, optimizer, scheduler, src, tgt if uses_target(method) else None,
                                batch_size, generator, epoch * steps_per_epoch, total)
        rows.append({"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "loss": terms["train_total"]})
    curve = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        curve.to_csv(tmp, index=False)
    if plot_path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.semilogx(curve.lr, curve.loss, "o-")
        ax.set(xlabel="learning rate (end of epoch)", ylabel="mean total loss",
               title=f"LR range scan: {network} {method}")
        fig.tight_layout()
        with atomic_path(plot_path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        plt.close(fig)
    return curve
