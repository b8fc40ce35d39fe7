"""Loss functions of DeepMerge II (Sec. 2): transfer (MMD, domain adversarial), Fisher, entropy, total; and,
beyond the paper, minimum class confusion (MCC), conditional domain-adversarial (CDAN+E) and self-training
under an estimated target class prior.

Each loss is available as a function and as an ``nn.Module`` (CDAN+E as a module with its building blocks).
"""

from deepmerge_da.nn.losses.adversarial import (
    DomainAdversarialLoss,
    DomainClassifier,
    GradientReversal,
    domain_classification_loss,
    ganin_coefficient,
    reverse_gradient,
)
from deepmerge_da.nn.losses.cdan import ConditionalDomainAdversarialLoss, entropy_weights, multilinear_map
from deepmerge_da.nn.losses.entropy import EntropyLoss, entropy_loss
from deepmerge_da.nn.losses.fisher import FisherLoss, fisher_loss
from deepmerge_da.nn.losses.mcc import MinimumClassConfusionLoss, minimum_class_confusion_loss
from deepmerge_da.nn.losses.mmd import DEFAULT_BANDWIDTH_MULTIPLIERS, PAPER_CODE_VARIANCES, MMDLoss, mmd_loss
from deepmerge_da.nn.losses.self_training import (
    SelfTrainingLoss,
    confident_pseudo_label_loss,
    confident_pseudo_labels,
    estimate_class_prior,
    prior_adjusted_logits,
    prior_matching_diversity,
    self_training_loss,
)
from deepmerge_da.nn.losses.total import TotalLoss, total_loss

__all__ = [
    "DEFAULT_BANDWIDTH_MULTIPLIERS",
    "PAPER_CODE_VARIANCES",
    "ConditionalDomainAdversarialLoss",
    "DomainAdversarialLoss",
    "DomainClassifier",
    "EntropyLoss",
    "FisherLoss",
    "GradientReversal",
    "MMDLoss",
    "MinimumClassConfusionLoss",
    "SelfTrainingLoss",
    "TotalLoss",
    "confident_pseudo_label_loss",
    "confident_pseudo_labels",
    "domain_classification_loss",
    "entropy_loss",
    "entropy_weights",
    "estimate_class_prior",
    "fisher_loss",
    "ganin_coefficient",
    "minimum_class_confusion_loss",
    "mmd_loss",
    "multilinear_map",
    "prior_adjusted_logits",
    "prior_matching_diversity",
    "reverse_gradient",
    "self_training_loss",
    "total_loss",
]
