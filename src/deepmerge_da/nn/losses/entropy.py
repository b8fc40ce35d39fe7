r"""Entropy minimisation, DeepMerge II Sec. 2.3, Eq. 11 (Grandvalet & Bengio 2005).

.. math::
    L_{EM} = -\frac{1}{n}\sum_{j=1}^{n}\sum_{m=1}^{M} p(y_m \mid h_j) \log p(y_m \mid h_j),
    \qquad p(\cdot \mid h_j) = \mathrm{softmax}(\text{logits}_j),

on unlabelled (target) samples: it pushes each prediction towards one class. Eq. 11 writes a sum over
samples; the default here is the batch mean, so the weight :math:`\lambda_{EM}` does not depend on batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["entropy_loss", "EntropyLoss"]

_REDUCTIONS = ("mean", "sum", "none")


def entropy_loss(logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Shannon entropy (in nats) of ``softmax(logits)`` over dim 1 of (n, M) logits, reduced over the batch
    by ``"mean"`` (default), ``"sum"`` (Eq. 11 as written) or ``"none"`` (per sample, shape (n,))."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if logits.dim() != 2:
        raise ValueError(f"expected (samples, classes) logits, got {tuple(logits.shape)}")
    # log_softmax instead of log(softmax): finite for saturated logits, where p log p -> 0.
    log_probs = F.log_softmax(logits, dim=1)
    per_sample = -(log_probs.exp() * log_probs).sum(dim=1)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


class EntropyLoss(nn.Module):
    """Module form of :func:`entropy_loss`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return entropy_loss(logits, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
