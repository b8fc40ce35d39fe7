r"""Self-training with confident pseudo-labels under an estimated target class prior; beyond DeepMerge II.

A classifier trained on the source gives posteriors :math:`p_s(c \mid x)` under the source class prior
:math:`\pi_s` (balanced here: the data stage balances the classes). If the target's prior :math:`\pi_t` differs
-- merger fractions differ between surveys -- and the classes look alike given the class, Bayes' rule gives the
target posterior by reweighting, i.e. by shifting the logits :math:`z` (:func:`prior_adjusted_logits`):

.. math::
    p_t(c \mid x) = \frac{(\pi_{t,c} / \pi_{s,c})\, p_s(c \mid x)}{\sum_{c'} (\pi_{t,c'} / \pi_{s,c'})\,
    p_s(c' \mid x)} = \mathrm{softmax}\big(z + \log \pi_t - \log \pi_s\big)_c .

:math:`\pi_t` is estimated from unlabelled target posteriors by the EM algorithm of Saerens, Latinne &
Decaestecker (2002, Neural Computation 14, 21), :func:`estimate_class_prior`:

.. math::
    \hat\pi^{(0)} = \pi_s, \qquad
    p^{(k)}(c \mid x_i) \propto \frac{\hat\pi^{(k)}_c}{\pi_{s,c}}\, p_s(c \mid x_i), \qquad
    \hat\pi^{(k+1)}_c = \frac{1}{n}\sum_{i=1}^{n} p^{(k)}(c \mid x_i).

With :math:`q_i = \mathrm{softmax}(z_i + \log\hat\pi - \log\pi_s)` the prior-adjusted predictions of :math:`n`
target samples, the loss (:func:`self_training_loss`) is

.. math::
    L_{ST} = \frac{1}{n}\sum_{i=1}^{n} \mathbb{1}\big[\max_c q_{ic} \ge \tau\big]\,(-\log q_{i \hat y_i})
             + \lambda_{div}\, \mathrm{KL}\big(\bar q \,\Vert\, \hat\pi\big), \qquad
    \hat y_i = \arg\max_c q_{ic}, \quad \bar q = \frac{1}{n}\sum_i q_i:

cross-entropy on the confident pseudo-labels (averaged over all n, so a batch without confident samples adds 0),
plus a diversity term that keeps the mean target prediction at the *estimated* prior. Information maximisation
(SHOT, Liang et al. 2020, ICML) pulls :math:`\bar q` towards the uniform distribution instead, which is right
only for a balanced target. Both terms act on the adjusted logits, so the network's own output stays calibrated
to the source prior, as the EM estimate assumes, while the adjusted output fits the target.

:class:`SelfTrainingLoss` keeps :math:`\hat\pi` as an exponential moving average of per-batch EM estimates
(detached, no gradient), starting at :math:`\pi_s`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "estimate_class_prior",
    "prior_adjusted_logits",
    "confident_pseudo_labels",
    "confident_pseudo_label_loss",
    "prior_matching_diversity",
    "self_training_loss",
    "SelfTrainingLoss",
]


def estimate_class_prior(probabilities: torch.Tensor, source_prior: torch.Tensor | None = None,
                         max_iter: int = 100, tol: float = 1e-6) -> torch.Tensor:
    r"""EM estimate of the class prior of the samples whose (n, C) posteriors under ``source_prior`` (default
    balanced) are ``probabilities`` (Saerens et al. 2002). Iterates until no class prior moves by more than
    ``tol``, at most ``max_iter`` times.

    Not differentiable: it runs on the detached probabilities, in float64 on the CPU (a few hundred tiny steps
    would cost more as GPU kernel launches), and returns (C,) in their dtype and on their device.
    """
    if probabilities.dim() != 2 or probabilities.shape[0] == 0:
        raise ValueError(f"expected non-empty (samples, classes) probabilities, got {tuple(probabilities.shape)}")
    posteriors = probabilities.detach().to("cpu", torch.float64)
    source = _prior_or_balanced(source_prior, posteriors.shape[1], posteriors)
    prior = source.clone()
    for _ in range(max_iter):
        adjusted = posteriors * (prior / source)
        updated = (adjusted / adjusted.sum(dim=1, keepdim=True)).mean(dim=0)
        converged = (updated - prior).abs().max().item() <= tol
        prior = updated
        if converged:
            break
    return prior.to(probabilities.device, probabilities.dtype)


def prior_adjusted_logits(logits: torch.Tensor, target_prior: torch.Tensor,
                          source_prior: torch.Tensor | None = None) -> torch.Tensor:
    """(n, C) ``logits`` of a classifier calibrated to ``source_prior`` (default balanced) shifted to
    ``target_prior``: ``logits + log(target_prior) - log(source_prior)``. Priors must be positive."""
    source = _prior_or_balanced(source_prior, logits.shape[1], logits)
    return logits + torch.log(target_prior.to(logits)) - torch.log(source)


def confident_pseudo_labels(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The predicted class of each of (n, C) ``logits`` and whether its softmax probability reaches ``threshold``
    (both (n,), no gradient)."""
    with torch.no_grad():
        confidence, labels = F.softmax(logits, dim=1).max(dim=1)
    return labels, confidence >= threshold


def confident_pseudo_label_loss(logits: torch.Tensor, threshold: float = 0.9) -> torch.Tensor:
    """Cross-entropy of (n, C) ``logits`` against their own predicted class, for the samples predicted with
    probability >= ``threshold``, averaged over all n samples (0 when none is confident)."""
    labels, confident = confident_pseudo_labels(logits, threshold)
    return (F.cross_entropy(logits, labels, reduction="none") * confident).mean()


def prior_matching_diversity(logits: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\bar q \Vert \pi)` of the mean softmax prediction :math:`\bar q` of (n, C) ``logits``
    from ``prior`` (C,), positive; zero when the predictions are on average the prior."""
    mean_prediction = F.softmax(logits, dim=1).mean(dim=0)
    return (torch.special.xlogy(mean_prediction, mean_prediction)
            - mean_prediction * torch.log(prior.to(logits))).sum()


def self_training_loss(target_logits: torch.Tensor, target_prior: torch.Tensor,
                       source_prior: torch.Tensor | None = None, threshold: float = 0.9,
                       diversity_weight: float = 1.0) -> torch.Tensor:
    """:math:`L_{ST}` of (n, C) ``target_logits`` (of a classifier calibrated to ``source_prior``, default
    balanced) at the estimated ``target_prior`` (C,): confident pseudo-label cross-entropy plus
    ``diversity_weight`` times the prior-matching diversity, both on the prior-adjusted logits."""
    if target_logits.dim() != 2 or target_logits.shape[0] == 0:
        raise ValueError(f"expected non-empty (samples, classes) logits, got {tuple(target_logits.shape)}")
    adjusted = prior_adjusted_logits(target_logits, target_prior, source_prior)
    return (confident_pseudo_label_loss(adjusted, threshold)
            + diversity_weight * prior_matching_diversity(adjusted, target_prior))


class SelfTrainingLoss(nn.Module):
    r"""Module form of :func:`self_training_loss` that estimates the target prior as it trains.

    In train mode, every call first updates the estimate with the batch's EM estimate (:func:`estimate_class_prior`
    on the detached softmax of ``target_logits``): :math:`\hat\pi \leftarrow (1 - m)\,\hat\pi + m\,
    \hat\pi_{batch}`, floored at ``min_prior`` and renormalised so that no logit shift or KL term becomes
    infinite; in eval mode the estimate is left as it is. ``target_prior`` and ``source_prior`` are buffers.
    After each call ``confident_fraction`` holds the fraction of the batch that got a pseudo-label (a float, for
    logging; NaN before the first call).
    """

    def __init__(self, num_classes: int = 2, threshold: float = 0.9, diversity_weight: float = 1.0,
                 prior_momentum: float = 0.1, source_prior: torch.Tensor | None = None,
                 min_prior: float = 1e-3) -> None:
        super().__init__()
        if not 0.0 < prior_momentum <= 1.0:
            raise ValueError(f"prior_momentum must lie in (0, 1], got {prior_momentum}")
        source = _prior_or_balanced(source_prior, num_classes, torch.empty(0))
        self.register_buffer("source_prior", source)
        self.register_buffer("target_prior", source.clone())
        self.threshold = threshold
        self.diversity_weight = diversity_weight
        self.prior_momentum = prior_momentum
        self.min_prior = min_prior
        self.confident_fraction = math.nan

    @torch.no_grad()
    def update_target_prior(self, target_logits: torch.Tensor) -> None:
        estimate = estimate_class_prior(F.softmax(target_logits, dim=1), self.source_prior)
        prior = (1.0 - self.prior_momentum) * self.target_prior + self.prior_momentum * estimate.to(self.target_prior)
        prior = prior.clamp_min(self.min_prior)
        self.target_prior.copy_(prior / prior.sum())

    def forward(self, target_logits: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update_target_prior(target_logits)
        loss = self_training_loss(target_logits, self.target_prior, self.source_prior, self.threshold,
                                  self.diversity_weight)
        adjusted = prior_adjusted_logits(target_logits, self.target_prior, self.source_prior)
        self.confident_fraction = confident_pseudo_labels(adjusted, self.threshold)[1].float().mean().item()
        return loss

    def extra_repr(self) -> str:
        return (f"threshold={self.threshold}, diversity_weight={self.diversity_weight}, "
                f"prior_momentum={self.prior_momentum}, min_prior={self.min_prior}")


def _prior_or_balanced(prior: torch.Tensor | None, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """``prior`` in the dtype and on the device of ``like`` (float32 for an integer ``like``), or the balanced one;
    checked to be a positive distribution over ``num_classes`` classes."""
    dtype = like.dtype if like.dtype.is_floating_point else torch.float32
    if prior is None:
        return torch.full((num_classes,), 1.0 / num_classes, dtype=dtype, device=like.device)
    prior = torch.as_tensor(prior).to(like.device, dtype)
    if prior.shape != (num_classes,) or (prior <= 0).any() or abs(prior.sum().item() - 1.0) > 1e-6:
        raise ValueError(f"a class prior must be {num_classes} positive numbers summing to 1, got {prior.tolist()}")
    return prior
