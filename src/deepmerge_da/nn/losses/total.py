r"""Total training objective, DeepMerge II Eq. 2 (Zhang et al. 2020a):

.. math::
    L_{TOT} = L_{CL} + \lambda_{FL} L_{FL} + \lambda_{EM} L_{EM} + \lambda_{TL} L_{TL}.

The paper sets :math:`\lambda_{FL} = \lambda_w / \lambda_b` and its hyperparameter tables list only
:math:`\lambda_w`, :math:`\lambda_b`: these live inside the Fisher term (:class:`~.fisher.FisherLoss`), so
``lambda_fisher`` stays 1 to reproduce the paper and is an extra knob otherwise.
For adversarial training :math:`L_{TL}` is the domain classifier loss computed behind a gradient reversal
layer (:class:`~.adversarial.DomainAdversarialLoss`); it is *added*, the reversal supplies the sign.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["total_loss", "TotalLoss"]


def total_loss(
    classification: torch.Tensor,
    transfer: torch.Tensor | None = None,
    fisher: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    lambda_tl: float = 1.0,
    lambda_fisher: float = 1.0,
    lambda_em: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the loss terms of Eq. 2; ``None`` means the term is absent.

    Returns the total (a scalar tensor to call ``backward()`` on) and, for logging, a dict of floats with the
    unweighted value of every present term (keys ``classification``, ``transfer``, ``fisher``, ``entropy``)
    and the weighted ``total``.
    """
    terms = {"classification": classification, "transfer": transfer, "fisher": fisher, "entropy": entropy}
    weights = {"classification": 1.0, "transfer": lambda_tl, "fisher": lambda_fisher, "entropy": lambda_em}
    present = {name: value for name, value in terms.items() if value is not None}
    total = sum(weights[name] * value for name, value in present.items())
    logged = {name: value.item() for name, value in present.items()}
    logged["total"] = total.item()
    return total, logged


class TotalLoss(nn.Module):
    """Module form of :func:`total_loss`, holding the weights of Eq. 2."""

    def __init__(self, lambda_tl: float = 1.0, lambda_fisher: float = 1.0, lambda_em: float = 1.0) -> None:
        super().__init__()
        self.lambda_tl = lambda_tl
        self.lambda_fisher = lambda_fisher
        self.lambda_em = lambda_em

    def forward(
        self,
        classification: torch.Tensor,
        transfer: torch.Tensor | None = None,
        fisher: torch.Tensor | None = None,
        entropy: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return total_loss(
            classification,
            transfer,
            fisher,
            entropy,
            lambda_tl=self.lambda_tl,
            lambda_fisher=self.lambda_fisher,
            lambda_em=self.lambda_em,
        )

    def extra_repr(self) -> str:
        return f"lambda_tl={self.lambda_tl}, lambda_fisher={self.lambda_fisher}, lambda_em={self.lambda_em}"
