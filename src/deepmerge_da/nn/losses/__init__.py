"""Loss functions of DeepMerge II (Sec. 2): transfer (MMD, domain adversarial), Fisher, entropy, total.

Each loss is available as a function and as an ``nn.Module``.
"""

from deepmerge_da.nn.losses.adversarial import (
    DomainAdversarialLoss,
    DomainClassifier,
    GradientReversal,
    domain_classification_loss,
    ganin_coefficient,
    reverse_gradient,
)
from deepmerge_da.nn.losses.entropy import EntropyLoss, entropy_loss
from deepmerge_da.nn.losses.fisher import FisherLoss, fisher_loss
from deepmerge_da.nn.losses.mmd import DEFAULT_BANDWIDTH_MULTIPLIERS, PAPER_CODE_VARIANCES, MMDLoss, mmd_loss
from deepmerge_da.nn.losses.total import TotalLoss, total_loss

__all__ = [
    "DEFAULT_BANDWIDTH_MULTIPLIERS",
    "PAPER_CODE_VARIANCES",
    "DomainAdversarialLoss",
    "DomainClassifier",
    "EntropyLoss",
    "FisherLoss",
    "GradientReversal",
    "MMDLoss",
    "TotalLoss",
    "domain_classification_loss",
    "entropy_loss",
    "fisher_loss",
    "ganin_coefficient",
    "mmd_loss",
    "reverse_gradient",
    "total_loss",
]
