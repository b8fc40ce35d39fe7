r"""Adaptive batch normalisation (AdaBN), Li et al. 2016, "Revisiting Batch Normalization For Practical Domain
Adaptation" (arXiv:1603.04779), Algorithm 1; beyond DeepMerge II.

A network trained on the source keeps every weight and replaces the running statistics of each batch-norm layer
by those of the target domain: for every channel :math:`j` of a batch-norm layer's input :math:`x_j` over all
:math:`N` target values (images x positions),

.. math::
    \mu_j = \frac{1}{N}\sum_{k=1}^{N} x_{jk}, \qquad
    \sigma_j^2 = \frac{1}{N - 1}\sum_{k=1}^{N} (x_{jk} - \mu_j)^2,

the unbiased variance, as PyTorch keeps ``running_var``. It is not a loss: training is source-only, the
re-estimation runs once on the finished network.
"""
from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

__all__ = ["reestimate_batchnorm"]


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> None:
    """Set the running mean and variance of every batch-norm layer of ``model`` to those of its inputs over all
    of ``images`` (in place); the weights and every other buffer stay as they are.

    One pass over ``images`` in batches, everything in evaluation mode (no dropout) except the batch-norm layers,
    which normalise each batch by its own statistics as in training, so a layer's input is what it sees when its
    predecessors are adapted. The statistics are those of the whole pass, not a moving average: exact
    per-channel means and unbiased variances, accumulated in float64 batch by batch (Chan et al.'s pairwise
    update, stable when the mean is large). Batches of at least a few hundred images keep the batch statistics
    upstream close to the whole split's that replace them. The modules' train / eval modes are restored.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not layers or len(images) < 2:
        raise ValueError(f"need a network with batch-norm layers and at least 2 images, got {len(layers)} layers "
                         f"and {len(images)} images")
    modes = {m: m.training for m in model.modules()}
    statistics = {layer: _RunningMoments() for layer in layers}
    hooks = [layer.register_forward_pre_hook(lambda layer, inputs: statistics[layer].add(inputs[0]))
             for layer in layers]
    try:
        model.eval()
        for layer in layers:
            layer.train()
        bounds = [*range(0, len(images), batch_size), len(images)]
        if bounds[-1] - bounds[-2] == 1 and len(bounds) > 2:  # one image has no batch statistics: join the last two
            del bounds[-2]
        for start, stop in pairwise(bounds):
            model(images[start:stop])
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes.items():
            module.training = training
    for layer, moments in statistics.items():
        layer.running_mean.copy_(moments.mean)
        layer.running_var.copy_(moments.squared_deviations / (moments.count - 1))


class _RunningMoments:
    """Per-channel count, mean and sum of squared deviations of (N, C, ...) tensors added one after another."""

    def __init__(self) -> None:
        self.count, self.mean, self.squared_deviations = 0, 0.0, 0.0

    def add(self, x: torch.Tensor) -> None:
        values = x.detach().transpose(0, 1).reshape(x.shape[1], -1).double()
        count = values.shape[1]
        mean = values.mean(dim=1)
        squared_deviations = (values - mean.unsqueeze(1)).square().sum(dim=1)
        total = self.count + count
        delta = mean - self.mean
        between = delta.square() * (self.count * count / total)
        self.mean = self.mean + delta * (count / total)
        self.squared_deviations = self.squared_deviations + squared_deviations + between
        self.count = total
