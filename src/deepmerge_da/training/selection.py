r"""Label-free model selection: which epoch's checkpoint to keep without target labels.

Every criterion is a score of one model computed from its outputs on the **source validation split**
(labelled) and the **target validation split** (whose labels are *not* used, except by the oracle).
**Higher is better for every criterion**: losses and risks are negated so that the selected epoch is
always the one with the largest score.

==============================  ===================================================================  ======
criterion                       score (higher is better)                                             labels
==============================  ===================================================================  ======
``source_accuracy``             source validation accuracy (the paper's choice; the default)         source
``negative_entropy``            :math:`-\frac1n\sum_j H(p_j)` on target (Morerio et al. 2018)        none
``information_maximisation``    :math:`H(\bar p) - \frac1n\sum_j H(p_j)` on target (Shi & Sha 2012)  none
``soft_neighbourhood_density``  mean entropy of soft neighbourhoods of target predictions (SND)      none
``deep_embedded_validation``    minus the DEV risk: importance-weighted source validation loss       source
``oracle_target_accuracy``      target validation accuracy: an **oracle**, logged for reference      target
==============================  ===================================================================  ======

:func:`selection_scores` computes all of them from one forward pass of each validation split; the trainer
logs them per epoch as history columns ``sel_<criterion>`` and keeps the checkpoint of the criterion named
by ``training.selection``. :func:`deepmerge_da.report.selection_report.selection_table` then tells, over finished
runs, which target *test* accuracy each criterion would have selected (from the per-epoch
``test_target_accuracy``, logged for reporting only), its regret against the best epoch, and its rank
correlation with the target test accuracy.

Entropies are in nats. :math:`p_j = \mathrm{softmax}(\text{logits}_j)`.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deepmerge_da.grid import CRITERIA
from deepmerge_da.nn.losses.entropy import entropy_loss
from deepmerge_da.training.runtime import predict_logits

PREFIX = "sel_"
SND_TEMPERATURE = 0.05


def column(criterion: str) -> str:
    """The history.csv column of a criterion: ``sel_<criterion>``."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown selection criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    return PREFIX + criterion


# --------------------------------------------------------------------------------------------- criteria

def source_accuracy(source_logits: torch.Tensor, source_labels: torch.Tensor) -> float:
    r"""Source validation accuracy, :math:`\frac1n\sum_i [\arg\max_m p_{im} = y_i]` (higher is better).

    The paper's selection rule (DeepMerge II, Sec. 3: early stopping and the kept checkpoint follow the source
    validation set). Needs source labels only.
    """
    if len(source_labels) == 0:
        return float("nan")
    return (source_logits.argmax(1) == source_labels).float().mean().item()


def negative_entropy(target_logits: torch.Tensor) -> float:
    r"""Minus the mean prediction entropy on target, :math:`-\frac1n\sum_j H(p_j)`,
    :math:`H(p) = -\sum_m p_m \log p_m` (higher is better: more confident target predictions).

    Morerio, Cavazza & Murino 2018, "Minimal-entropy correlation alignment for unsupervised deep domain
    adaptation" (ICLR), who select hyperparameters by the target entropy. Uses no labels. Its known failure:
    a model that is confidently wrong scores well.
    """
    if len(target_logits) == 0:
        return float("nan")
    return -entropy_loss(target_logits.float(), "mean").item()


def information_maximisation(target_logits: torch.Tensor) -> float:
    r"""Information maximisation on target, :math:`H(\bar p) - \frac1n\sum_j H(p_j)`,
    :math:`\bar p = \frac1n\sum_j p_j` (higher is better).

    The mutual information between inputs and predicted classes: confident (low :math:`H(p_j)`) *and*
    diverse (high :math:`H(\bar p)`) predictions. Shi & Sha 2012, "Information-theoretical learning of
    discriminative clusters for unsupervised domain adaptation" (ICML); as pytorch-adapt's ``IMValidator``
    (its entropy score :math:`-\frac1n\sum_j H(p_j)` plus its diversity score :math:`H(\bar p)`).
    Between 0 and :math:`\log M`. Uses no labels.
    """
    if len(target_logits) == 0:
        return float("nan")
    logits = target_logits.float()
    mean_p = F.softmax(logits, dim=1).mean(0)
    diversity = -(mean_p * torch.log(mean_p.clamp_min(1e-12))).sum()
    return (diversity - entropy_loss(logits, "mean")).item()


def soft_neighbourhood_density(target_logits: torch.Tensor, temperature: float = SND_TEMPERATURE) -> float:
    r"""Soft neighbourhood density (SND) of the target predictions (higher is better).

    Saito, Kim, Teterwak, Sclaroff, Darrell & Saenko 2021, "Tune it the right way: unsupervised validation of
    domain adaptation via soft neighborhood density" (ICCV). With :math:`f_j = p_j / \lVert p_j \rVert_2` the
    L2-normalised softmax outputs of the target samples (the paper's choice of "features"),

    .. math::
        S_{jk} = f_j^\top f_k \;(k \ne j), \qquad
        P_{jk} = \frac{\exp(S_{jk}/\tau)}{\sum_{l \ne j} \exp(S_{jl}/\tau)}, \qquad
        \mathrm{SND} = \frac1n \sum_j \Big(-\sum_{k \ne j} P_{jk} \log P_{jk}\Big),

    with :math:`\tau = 0.05`; self-similarity is excluded. A high SND means each prediction has many close
    neighbours: the target predictions form dense clusters. Uses no labels.
    """
    n = len(target_logits)
    if n < 2:
        return float("nan")
    f = F.normalize(F.softmax(target_logits.float(), dim=1), dim=1)
    total = 0.0
    for start in range(0, n, 1024):  # blocks of rows: memory stays O(1024 n) for large splits
        sim = (f[start:start + 1024] @ f.T) / temperature
        rows = torch.arange(len(sim), device=sim.device)
        sim[rows, rows + start] = float("-inf")  # no self-similarity
        log_p = F.log_softmax(sim, dim=1)
        p = log_p.exp()
        total += -(p * log_p.masked_fill(p == 0, 0.0)).sum().item()
    return total / n


def deep_embedded_validation(source_features, source_logits: torch.Tensor, source_labels: torch.Tensor,
                             target_features, *, n_components: int = 32, n_folds: int = 2, C: float = 1.0,
                             seed: int = 0) -> float:
    r"""Minus the Deep Embedded Validation risk (higher is better).

    You, Wang, Long & Jordan 2019, "Towards accurate model selection in deep unsupervised domain adaptation"
    (ICML). The target risk is estimated by importance-weighting the per-sample source validation loss
    :math:`\ell_i` (cross-entropy) with density ratios estimated in feature space by a domain classifier:

    .. math::
        w_i = \frac{n_s}{n_t}\,\frac{p(\mathrm{target}\mid x_i)}{p(\mathrm{source}\mid x_i)}, \qquad
        L_i = w_i \ell_i, \qquad
        \eta = -\frac{\widehat{\mathrm{Cov}}(L, w)}{\widehat{\mathrm{Var}}(w)}, \qquad
        \mathrm{DEV} = \bar L + \eta\,\bar w - \eta,

    where :math:`n_s, n_t` are the source and target sample counts the classifier was trained on (undoing
    its class prior) and :math:`\eta` is the control variate of the DEV paper (:math:`E[w] = 1`), which
    lowers the variance of the estimate. Here the domain classifier is a logistic regression (scikit-learn,
    L2 penalty ``C``) on the features standardised and reduced by PCA to ``n_components`` dimensions (PCA
    fitted on both domains' validation features, no labels used); it is **cross-fitted**: the source and
    target validation samples are split into ``n_folds`` folds and the weight of a source sample comes from
    the classifier trained on the other folds, so no sample is weighted by a classifier that saw it.
    Returns ``-DEV``. Uses source labels only; the target features are unlabelled.
    """
    with single_threaded():
        return _deep_embedded_validation(source_features, source_logits, source_labels, target_features,
                                         n_components, n_folds, C, seed)


def _deep_embedded_validation(source_features, source_logits, source_labels, target_features, n_components, n_folds,
                              C, seed) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    xs, xt = _cpu_float(source_features), _cpu_float(target_features)
    ns, nt = len(xs), len(xt)
    if ns < 2 * n_folds or nt < 2 * n_folds:
        return float("nan")
    losses = F.cross_entropy(source_logits.detach().float().cpu(), source_labels.cpu(), reduction="none")
    losses = losses.numpy().astype(np.float64)
    if not (torch.isfinite(xs).all() and torch.isfinite(xt).all() and np.isfinite(losses).all()):
        return float("nan")  # a diverged model: no score, and no error that would stop training

    pooled = torch.cat([xs, xt])
    pooled = (pooled - pooled.mean(0)) / pooled.std(0).clamp_min(1e-6)
    pooled = pca_project(pooled, n_components, seed).numpy().astype(np.float64)
    zs, zt = pooled[:ns], pooled[ns:]

    rng = np.random.default_rng(seed)
    fold_s = rng.permutation(ns) % n_folds
    fold_t = rng.permutation(nt) % n_folds
    weights = np.empty(ns)
    for fold in range(n_folds):
        train_s, train_t = zs[fold_s != fold], zt[fold_t != fold]
        x = np.concatenate([train_s, train_t])
        y = np.concatenate([np.zeros(len(train_s)), np.ones(len(train_t))])
        with warnings.catch_warnings():  # an unconverged fit still gives usable probabilities
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=C, max_iter=200).fit(x, y)
        log_odds = clf.decision_function(zs[fold_s == fold])  # log p(target|x) / p(source|x)
        weights[fold_s == fold] = np.exp(np.clip(log_odds, -30.0, 30.0)) * len(train_s) / len(train_t)

    weighted = weights * losses
    var_w = weights.var(ddof=1)
    eta = 0.0 if var_w < 1e-12 else -np.cov(weighted, weights, ddof=1)[0, 1] / var_w
    dev_risk = weighted.mean() + eta * weights.mean() - eta
    return -float(dev_risk)


def oracle_target_accuracy(target_logits: torch.Tensor, target_labels: torch.Tensor) -> float:
    r"""Target validation accuracy, :math:`\frac1n\sum_j [\arg\max_m p_{jm} = y_j]` (higher is better).

    An **oracle**: it reads the target labels, which unsupervised domain adaptation does not have. Logged to
    measure how far the label-free criteria are from it; never used for selection unless asked for.
    """
    return source_accuracy(target_logits, target_labels)


# ----------------------------------------------------------------------------------------- per epoch

@dataclass
class SplitOutputs:
    """A model's outputs on one split: logits, features (both float32) and the split's labels."""

    logits: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor

    def accuracy_and_loss(self) -> tuple[float, float]:
        if len(self.labels) == 0:
            return float("nan"), float("nan")
        return source_accuracy(self.logits, self.labels), F.cross_entropy(self.logits, self.labels).item()


def split_outputs(model: torch.nn.Module, data, batch_size: int = 512) -> SplitOutputs:
    """One forward pass (evaluation mode) of a split (anything with ``images`` and ``labels``)."""
    if len(data.labels) == 0:
        return SplitOutputs(torch.empty(0, 2), torch.empty(0, getattr(model, "feature_dim", 0)), data.labels)
    logits, features = predict_logits(model, data.images, batch_size, with_features=True)
    return SplitOutputs(logits, features, data.labels)


def scores_from_outputs(source: SplitOutputs, target: SplitOutputs) -> dict[str, float]:
    """Every criterion from precomputed outputs, keyed by history column (``sel_<criterion>``)."""
    with single_threaded():
        return _scores(source, target)


def _scores(source: SplitOutputs, target: SplitOutputs) -> dict[str, float]:
    return {
        column("source_accuracy"): source_accuracy(source.logits, source.labels),
        column("negative_entropy"): negative_entropy(target.logits),
        column("information_maximisation"): information_maximisation(target.logits),
        column("soft_neighbourhood_density"): soft_neighbourhood_density(target.logits),
        column("deep_embedded_validation"): deep_embedded_validation(source.features, source.logits, source.labels,
                                                                     target.features),
        column("oracle_target_accuracy"): oracle_target_accuracy(target.logits, target.labels),
    }


def selection_scores(model: torch.nn.Module, source_val, target_val, batch_size: int = 512) -> dict[str, float]:
    """Every criterion of ``model`` on the source and target validation splits, keyed ``sel_<criterion>``.

    One forward pass of each split (the target labels are read by ``oracle_target_accuracy`` only).
    """
    return scores_from_outputs(split_outputs(model, source_val, batch_size),
                               split_outputs(model, target_val, batch_size))


def select_epoch(history, criterion: str) -> int:
    """The row index of ``history`` (a DataFrame) a criterion selects: its highest ``sel_<criterion>``, ties
    broken by the lower ``val_source_loss``, then by the earlier epoch (the trainer's rule). NaN never wins."""
    score = history[column(criterion)].astype(float).to_numpy()
    loss = history["val_source_loss"].astype(float).to_numpy() if "val_source_loss" in history else np.zeros(len(score))
    score = np.where(np.isnan(score), -np.inf, score)
    loss = np.where(np.isnan(loss), np.inf, loss)
    order = np.lexsort((np.arange(len(score)), loss, -score))  # last key is the primary one
    return int(order[0])


@contextmanager
def single_threaded():
    """Run the block with one BLAS / OpenMP / PyTorch thread, then restore the thread counts.

    The criteria work on a few hundred samples: small linear-algebra calls, for which multithreaded MKL and
    OpenBLAS lose far more in synchronisation than they gain, badly so on a loaded machine (measured: DEV
    0.1 s single-threaded against 0.5-1.8 s with two threads on a busy 2-core machine).
    """
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    try:
        with threadpool_limits(1):
            torch.set_num_threads(1)
            yield
    finally:
        torch.set_num_threads(n)


def _cpu_float(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu()
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def pca_project(z: torch.Tensor, n_components: int, seed: int = 0, n_iter: int = 2) -> torch.Tensor:
    """``z`` (centred, (n, d)) projected on its first ``n_components`` principal axes: a randomised SVD
    (Halko, Martinsson & Tropp 2011) with ``n_iter`` power iterations and its own seeded generator, so that
    it neither reads nor advances the global random state of training. ``z`` itself when already narrow."""
    k = int(min(n_components, z.shape[1], z.shape[0] - 1))
    if k >= z.shape[1]:
        return z
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(z @ torch.randn(z.shape[1], min(k + 8, z.shape[1]), generator=g, dtype=z.dtype)).Q
    for _ in range(n_iter):
        q = torch.linalg.qr(z @ (z.T @ q)).Q
    u, s, _ = torch.linalg.svd(q.T @ z, full_matrices=False)
    return (q @ u[:, :k]) * s[:k]
