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
``mcc``             beyond the paper: + lambda_tl * minimum class confusion of the target predictions
                    (Jin et al. 2020; :mod:`deepmerge_da.nn.losses.mcc`)
``cdan_e``          beyond the paper: + lambda_tl * conditional domain-adversarial loss with entropy conditioning
                    (CDAN+E, Long et al. 2018; :mod:`deepmerge_da.nn.losses.cdan`)
``adabn``           beyond the paper: ``noda``'s training; the saved model's batch-norm statistics are then
                    re-estimated on the target training split (AdaBN, Li et al. 2016; :mod:`deepmerge_da.nn.adabn`)
``self_training``   beyond the paper: + lambda_tl * (confident pseudo-label cross-entropy + lambda_div *
                    KL(mean target prediction || estimated target prior)), the prior estimated by EM
                    (Saerens et al. 2002; :mod:`deepmerge_da.nn.losses.self_training`)
==================  ===========================================================================

How to read an ``adabn`` run: its training, history (every per-epoch accuracy and selection score) and kept
epoch are those of the ``noda`` run of the same seed and preset (the same steps, bit for bit on a CPU), because
the statistics are replaced only after training. Its ``model.pt``, and so every metric evaluated from it, carries
the *target* statistics: its source test metrics are those of the adapted network on source images -- what
adaptation costs on the source -- not the source-only network's, which are the ``noda`` run's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepmerge_da.grid import METHODS
from deepmerge_da.nn.losses import (
    PAPER_CODE_VARIANCES,
    ConditionalDomainAdversarialLoss,
    DomainAdversarialLoss,
    DomainClassifier,
    FisherLoss,
    GradientReversal,
    MinimumClassConfusionLoss,
    MMDLoss,
    SelfTrainingLoss,
    entropy_loss,
    ganin_coefficient,
    total_loss,
)

TRANSFER = {"noda": None, "mmd": "mmd", "mmd_fisher_em": "mmd", "ada": "adversarial",
            "ada_fisher_em": "adversarial", "tl_mmd": "mmd", "target_only": None,
            "mcc": "class_confusion", "cdan_e": "conditional_adversarial", "adabn": None,
            "self_training": "self_training"}
NUM_CLASSES = 2  # merger, non-merger


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


def reestimates_batchnorm_on_target(method: str) -> bool:
    """Whether the method's saved model gets the target training split's batch-norm statistics (AdaBN)."""
    return method == "adabn"


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
        dc_hidden = int(hp.get("dc_hidden", 1024))  # the paper code's width
        transfer = TRANSFER[method]
        self.mmd = self.adversarial = self.fisher = self.class_confusion = self.self_training = None
        if transfer == "mmd":
            if self.paper_faithful:  # the paper code's 19 fixed kernels with the biased estimator
                self.mmd = MMDLoss(variances=PAPER_CODE_VARIANCES, estimator="biased")
            else:
                self.mmd = MMDLoss(estimator=hp.get("mmd_estimator", "unbiased"),
                                   bandwidth=hp.get("mmd_bandwidth", "median"))
        elif transfer == "adversarial":
            self.adversarial = DomainAdversarialLoss(DomainClassifier(feature_dim, dc_hidden),
                                                     GradientReversal(1.0))
        elif transfer == "conditional_adversarial":
            self.adversarial = ConditionalDomainAdversarialLoss(DomainClassifier(NUM_CLASSES * feature_dim, dc_hidden),
                                                                GradientReversal(1.0), entropy_conditioning=True)
        elif transfer == "class_confusion":
            self.class_confusion = MinimumClassConfusionLoss(temperature=float(hp.get("mcc_temperature", 2.5)))
        elif transfer == "self_training":
            self.self_training = SelfTrainingLoss(NUM_CLASSES, threshold=float(hp.get("confidence_threshold", 0.9)),
                                                  diversity_weight=float(hp.get("lambda_div", 1.0)),
                                                  prior_momentum=float(hp.get("prior_momentum", 0.1)))
        if method.endswith("fisher_em"):
            self.fisher = FisherLoss(num_classes=NUM_CLASSES, feature_dim=feature_dim,
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
            if TRANSFER[self.method] == "conditional_adversarial":
                transfer = self.adversarial(out.source_features, out.source_logits, out.target_features,
                                            out.target_logits)
            else:
                transfer = self.adversarial(out.source_features, out.target_features)
        if self.class_confusion is not None:
            transfer = self.class_confusion(out.target_logits)
        if self.self_training is not None:
            transfer = self.self_training(out.target_logits)
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
        if self.self_training is not None:
            terms["confident_fraction"] = self.self_training.confident_fraction
            terms["estimated_target_merger_fraction"] = self.self_training.target_prior[1].item()
        return total, terms
