"""The names of the experiment grid, each list written once: pairs, networks, methods, selection criteria.

The schema checks, the workflow's wildcard constraints, the command line's choices and the tables take them from
here; the modules that implement the names (:mod:`deepmerge_da.nn.models`, :mod:`deepmerge_da.nn.methods`,
:mod:`deepmerge_da.training.selection`) too. Free of PyTorch, so that importing the names is quick.
"""

#: The transfer problems of the paper: simulated to noisy simulated images, simulated to real SDSS images.
PAIRS = ("sim2sim", "sim2real")
NETWORKS = ("deepmerge", "resnet18")
#: The paper's methods (Sec. 2, Table 1); ``target_only`` is its upper bound trained on target labels.
PAPER_METHODS = ("noda", "mmd", "mmd_fisher_em", "ada", "ada_fisher_em", "tl_mmd", "target_only")
#: Methods the paper does not have, marked "beyond the paper" wherever they are shown.
BEYOND_THE_PAPER = ("mcc", "cdan_e", "adabn", "self_training")
METHODS = PAPER_METHODS + BEYOND_THE_PAPER
#: Model-selection criteria, each logged per epoch as ``sel_<criterion>`` (higher is better).
CRITERIA = ("source_accuracy", "negative_entropy", "information_maximisation", "soft_neighbourhood_density",
            "deep_embedded_validation", "oracle_target_accuracy")
#: Criteria that read target labels: reported for reference, never a sensible training choice.
ORACLES = ("oracle_target_accuracy",)
