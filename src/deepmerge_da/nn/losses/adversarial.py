r"""Domain adversarial training (DANN), DeepMerge II Sec. 2.1.2, Eqs. 8-9 (Ganin et al. 2016).

The domain classifier :math:`N_D` learns to tell source features (label 1) from target features (label 0)
by minimising the cross-entropy

.. math::
    L_d = \frac{1}{n_s + n_t}\Big[\sum_{x_s \in D_s} \ell(N_D(N_F(x_s)), 1)
          + \sum_{x_t \in D_t} \ell(N_D(N_F(x_t)), 0)\Big],

while the feature extractor :math:`N_F` maximises it (Eq. 9, :math:`L_{TL,adv} = \max\{-L_d\}`). A gradient
reversal layer between the two turns this min-max game into one minimisation: adding :math:`L_d` to the total
loss trains :math:`N_D` to minimise it and, through the reversed gradient, :math:`N_F` to maximise it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "reverse_gradient",
    "GradientReversal",
    "ganin_coefficient",
    "DomainClassifier",
    "domain_classification_loss",
    "DomainAdversarialLoss",
]


class _GradientReversalFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        # view_as: return a new tensor so autograd routes the gradient through backward() below.
        return features.view_as(features)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad_output, None


def reverse_gradient(features: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``-coeff`` in the backward pass."""
    return _GradientReversalFunction.apply(features, coeff)


class GradientReversal(nn.Module):
    """Gradient reversal layer: identity forward, gradient times ``-coeff`` backward.

    ``coeff`` is a plain attribute, so a training loop can anneal it between steps, e.g.
    ``layer.coeff = ganin_coefficient(step / total_steps)``.
    """

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = coeff

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return reverse_gradient(features, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}"


def ganin_coefficient(progress: float, gamma: float = 10.0, high: float = 1.0, low: float = 0.0) -> float:
    r"""Reversal coefficient schedule of Ganin et al. (2016):
    :math:`\text{low} + (\text{high} - \text{low})\,(2 / (1 + e^{-\gamma p}) - 1)` for training progress
    :math:`p \in [0, 1]`. It rises from ``low`` at p = 0 to almost ``high`` at p = 1, which keeps the noisy
    early domain classifier from disturbing the features.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1], got {progress}")
    return low + (high - low) * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class DomainClassifier(nn.Sequential):
    """Domain discriminator :math:`N_D`: Linear → ReLU → Dropout → Linear → ReLU → Dropout → Linear.

    Outputs one logit per sample, shape (N, 1); ``torch.sigmoid`` of it is the probability of "source".
    Logits rather than probabilities so that the loss can use the numerically stable BCE-with-logits.

    Under Adam every weight moves by about the learning rate per step, whatever its gradient, so a wide first
    layer (2592 inputs for DeepMerge) moves the domain logits much faster than the feature extractor moves the
    features: at the network's learning rate it wins the game within an epoch and the reversed gradient vanishes.
    DeepMerge's presets therefore give it ``lr × 0.01`` (``dc_lr_mult``; docs/deviations.md #17).
    """

    def __init__(self, in_features: int, hidden: int = 1024, dropout: float = 0.5) -> None:
        super().__init__(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )


def domain_classification_loss(source_logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    r"""Binary cross-entropy of domain logits, source labelled 1 and target 0, averaged over all
    :math:`n_s + n_t` samples (the paper's code). Eq. 8 as printed sums the two per-domain means instead,
    which for :math:`n_s = n_t` is twice this value.
    """
    source_logits, target_logits = source_logits.reshape(-1), target_logits.reshape(-1)
    logits = torch.cat([source_logits, target_logits])
    labels = torch.cat([torch.ones_like(source_logits), torch.zeros_like(target_logits)])
    return F.binary_cross_entropy_with_logits(logits, labels)


class DomainAdversarialLoss(nn.Module):
    r"""DANN transfer loss: :func:`domain_classification_loss` of a domain classifier applied to
    gradient-reversed features.

    ``forward(source_features, target_features)`` returns :math:`L_d` (Eq. 8, mean over both domains) and
    stores the domain classifier's accuracy on that batch in ``domain_accuracy`` (a float, for logging;
    NaN before the first call). Add the returned value to the total loss with weight :math:`\lambda_{TL}`:
    the domain classifier descends on it while the reversed gradient makes the feature extractor ascend on it.

    .. warning::
        The domain classifier's weights are ordinary parameters of this module and are **not** part of the
        backbone. The caller must give them to the optimizer, or the discriminator never learns and the
        "adversary" stays a fixed random network (the bug in the paper's code). Typically with the
        learning-rate multiplier of the paper's Tables A2/A3 ("Domain class. LR mult.")::

            adversarial = DomainAdversarialLoss(DomainClassifier(feature_dim))
            optimizer = torch.optim.Adam([
                {"params": model.parameters(), "lr": lr},
                adversarial.param_group(lr, lr_multiplier=0.01),
            ])

        and call ``adversarial.train()`` / ``.eval()`` together with the model (the classifier has dropout).

    Args:
        domain_classifier: maps features (N, d) to one domain logit per sample, (N, 1) or (N,).
        gradient_reversal: the reversal layer; a ``GradientReversal(1.0)`` when omitted. Anneal its ``coeff``
            with :func:`ganin_coefficient`.
    """

    def __init__(self, domain_classifier: nn.Module, gradient_reversal: GradientReversal | None = None) -> None:
        super().__init__()
        self.domain_classifier = domain_classifier
        self.gradient_reversal = gradient_reversal if gradient_reversal is not None else GradientReversal()
        self.domain_accuracy = math.nan

    def forward(self, source_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        n_source = source_features.shape[0]
        # One pass over both domains, so batch-dependent layers see the same mixed batch.
        features = self.gradient_reversal(torch.cat([source_features, target_features]))
        logits = self.domain_classifier(features).reshape(-1)
        source_logits, target_logits = logits[:n_source], logits[n_source:]
        with torch.no_grad():
            correct = (source_logits > 0).sum() + (target_logits <= 0).sum()
            self.domain_accuracy = correct.item() / logits.numel()
        return domain_classification_loss(source_logits, target_logits)

    def param_group(self, lr: float, lr_multiplier: float = 1.0) -> dict[str, Any]:
        """Optimizer parameter group for the domain classifier, at ``lr * lr_multiplier``."""
        return {"params": list(self.parameters()), "lr": lr * lr_multiplier}
