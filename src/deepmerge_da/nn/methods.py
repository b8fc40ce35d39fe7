"""Training methods as objectives: which losses act on which outputs, with which weights.

A method is turned into a :class:`TransferObjective`, an ``nn.Module`` whose ``forward`` takes the
outputs of one optimisation step and returns the total loss of Eq. 2 and its terms. The trainer only
calls the objective; it never knows which losses it runs.

Methods (``method`` in the config and run paths):

==================  ===========================================================================
``noda``            cross-entropy on labelled source images only
``mmd``             + lambda_tl * MMD(source features, target features)
``mmd_fisher_em``   + Fisher loss on source features + lambda_em * entropy of target predictions
``ada``             + lambda_tl * domain-adversarial loss through a gradient-reversal layer
``ada_fisher_em``   ADA + Fisher + entropy
``tl_mmd``          ``mmd``, initialised from another run's checkpoint (transfer learning)
``target_only``     cross-entropy on labelled *target* images (the upper bound of Sec. 6.2)
==================  ===========================================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from deepmerge_da.nn.losses import (PAPER_CODE_VARIANCES, DomainAdversarialLoss, DomainClassifier, FisherLoss, GradientReversal,
                     MMDLoss, entropy_loss, ganin_coefficient, total_loss)

METHODS = ("noda", "mmd", "mmd_fisher_em", "ada", "ada_fisher_em", "tl_mmd", "target_only")
TRANSFER = {"noda": None, "mmd": "mmd", "mmd_fisher_em": "mmd", "ada": "adversarial",
            "ada_fisher_em": "adversarial", "tl_mmd": "mmd", "target_only": None}


@dataclass
class StepOutputs:
    """What one optimisation step produced, for the objective to score."""

    source_logits: torch.Tensor
    source_features: torch.Tensor
    source_labels: torch.Tensor
    target_logits: torch.Tensor | None = None
    target_features: torch.Tensor | None = None
    progress: float = 0.0  # fraction of training done, in [0, 1]


def uses_target(method: str) -> bool:
    """Whether the method needs unlabelled target batches during training."""
    return TRANSFER[method] is not None


class TransferObjective(nn.Module):
    """The total loss of Eq. 2 for one method: L = L_C + lambda_tl L_TL + L_F + lambda_em L_EM.

    Parameters of the losses themselves (the domain classifier, learnable Fisher centres) are
    ordinary parameters: :meth:`param_groups` hands them to the optimiser with their lr multiplier.
    """

    def __init__(self, method: str, feature_dim: int, hp: dict):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self.method = method
        self.lambda_tl = float(hp.get("lambda_tl") or 0.0)
        self.lambda_em = float(hp.get("lambda_em") or 0.0)
        self.paper_faithful = bool(hp.get("paper_faithful", False))
        self.dc_lr_mult = float(hp.get("dc_lr_mult") or 1.0)
        self.reversal = hp.get("reversal", "ganin")
        transfer = TRANSFER[method]
        self.mmd = self.adversarial = self.fisher = None
        if transfer == "mmd":
            if self.paper_faithful:  # the paper code's 19 fixed kernels with the biased estimator
                self.mmd = MMDLoss(variances=PAPER_CODE_VARIANCES, estimator="biased")
            else:
                self.mmd = MMDLoss(estimator=hp.get("mmd_estimator", "unbiased"),
                                   bandwidth=hp.get("mmd_bandwidth", "median"))
        elif transfer == "adversarial":
            self.adversarial = DomainAdversarialLoss(DomainClassifier(feature_dim), GradientReversal(1.0))
        if method.endswith("fisher_em"):
            self.fisher = FisherLoss(num_classes=2, feature_dim=feature_dim,
                                     learnable_centers=hp.get("fisher_centers", "learnable") == "learnable",
                                     lambda_w=float(hp["lambda_w"]), lambda_b=float(hp["lambda_b"]),
                                     form=hp.get("fisher_form", "ratio"))

    def param_groups(self, lr: float) -> list[dict]:
        groups = []
        if self.adversarial is not None:
            groups.append(dict(self.adversarial.param_group(lr, self.dc_lr_mult), name="domain_classifier"))
        if self.fisher is not None and any(True for _ in self.fisher.parameters()):
            groups.append({"params": list(self.fisher.parameters()), "lr": lr, "name": "fisher_centers"})
        return groups

    def reversal_coefficient(self, progress: float) -> float:
        if self.paper_faithful or self.reversal == "constant":
            return 1.0
        return ganin_coefficient(progress)

    def forward(self, out: StepOutputs) -> tuple[torch.Tensor, dict[str, float]]:
        classification = F.cross_entropy(out.source_logits, out.source_labels)
        transfer = fisher = entropy = None
        if self.mmd is not None:
            transfer = self.mmd(out.source_features, out.target_features)
        if self.adversarial is not None:
            self.adversarial.gradient_reversal.coeff = self.reversal_coefficient(out.progress)
            transfer = self.adversarial(out.source_features, out.target_features)
        if self.fisher is not None:
            fisher = self.fisher(out.source_features, out.source_labels)
            # The paper's code minimises the entropy of source and target predictions together.
            logits = (torch.cat([out.source_logits, out.target_logits]) if self.paper_faithful
                      else out.target_logits)
            entropy = entropy_loss(logits)
        total, terms = total_loss(classification, transfer=transfer, fisher=fisher, entropy=entropy,
                                  lambda_tl=self.lambda_tl, lambda_fisher=1.0, lambda_em=self.lambda_em)
        if self.adversarial is not None:
            terms["domain_accuracy"] = float(self.adversarial.domain_accuracy)
        return total, terms
