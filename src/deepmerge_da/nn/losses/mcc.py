r"""Minimum class confusion (MCC), Jin et al. 2020, "Minimum Class Confusion for Versatile Domain Adaptation"
(ECCV), Eqs. 1-7; beyond DeepMerge II.

For the logits :math:`z_i` of :math:`n` target samples and :math:`|C|` classes:

.. math::
    \hat y_{ij} = \frac{\exp(z_{ij} / T)}{\sum_{j'} \exp(z_{ij'} / T)}
    \qquad \text{(temperature scaling)},

    H_i = -\sum_j \hat y_{ij} \log \hat y_{ij}, \qquad
    W_{ii} = \frac{n \, (1 + e^{-H_i})}{\sum_{i'} (1 + e^{-H_{i'}})}
    \qquad \text{(entropy-based example weights, mean 1)},

    C_{jj'} = \sum_i W_{ii} \, \hat y_{ij} \, \hat y_{ij'} = (\hat Y^\top W \hat Y)_{jj'}
    \qquad \text{(class correlation)},

    \tilde C_{jj'} = \frac{C_{jj'}}{\sum_{j''} C_{j''j'}}
    \qquad \text{(category normalisation)},

    L_{MCC} = \frac{1}{|C|} \sum_j \sum_{j' \neq j} \tilde C_{jj'}
    \qquad \text{(mean off-diagonal confusion)}.

Minimising :math:`L_{MCC}` discourages the target predictions from putting mass on two classes at once; confident
examples count more. As in the authors' code and the Transfer-Learning-Library, the weights :math:`W` are
detached: they select examples, they are not trained. DeepMerge II's total loss gains it as the transfer term,
:math:`L = L_{CL} + \lambda_{TL} L_{MCC}` (the paper's trade-off :math:`\mu = 1`, temperature :math:`T = 2.5`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["minimum_class_confusion_loss", "MinimumClassConfusionLoss"]


def minimum_class_confusion_loss(logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    """MCC of (n, C) target ``logits`` at ``temperature`` (a scalar tensor, differentiable in ``logits``)."""
    if logits.dim() != 2 or logits.shape[0] == 0:
        raise ValueError(f"expected non-empty (samples, classes) logits, got {tuple(logits.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    n, num_classes = logits.shape
    log_probs = F.log_softmax(logits / temperature, dim=1)
    probs = log_probs.exp()
    with torch.no_grad():
        # log_softmax instead of log(softmax): finite for saturated logits, where p log p -> 0.
        entropy = -(probs * log_probs).sum(dim=1)
        weights = 1.0 + torch.exp(-entropy)
        weights = n * weights / weights.sum()
    correlation = (probs * weights.unsqueeze(1)).T @ probs
    normalised = correlation / correlation.sum(dim=0, keepdim=True)
    return (normalised.sum() - normalised.trace()) / num_classes


class MinimumClassConfusionLoss(nn.Module):
    """Module form of :func:`minimum_class_confusion_loss`."""

    def __init__(self, temperature: float = 2.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return minimum_class_confusion_loss(logits, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
