r"""Multi-kernel maximum mean discrepancy (MMD), DeepMerge II Sec. 2.1.1, Eqs. 5-7.

The squared MMD between source distribution :math:`P_s` and target distribution :math:`P_t` (Eq. 5) is

.. math::
    D = \mathbb{E}_{P_s}[\kappa(x_s, x_s')] - 2\,\mathbb{E}_{P_s, P_t}[\kappa(x_s, x_t)]
        + \mathbb{E}_{P_t}[\kappa(x_t, x_t')],

with :math:`\kappa` a sum of Gaussian RBF kernels (Eq. 7)

.. math::
    \kappa(x, x') = \sum_k \exp\!\left(-\frac{\lVert x - x' \rVert^2}{2 \sigma_k^2}\right).

Internally every kernel is parametrised by its variance :math:`v_k = \sigma_k^2`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["PAPER_CODE_VARIANCES", "DEFAULT_BANDWIDTH_MULTIPLIERS", "mmd_loss", "MMDLoss"]

#: The 19 kernel parameters of the DeepMerge II code. The code calls them "sigmas" but uses each value
#: ``s`` as a variance, ``exp(-d**2 / (2 * s))``; pass them as ``variances=``, not as ``sigmas=``.
PAPER_CODE_VARIANCES: tuple[float, ...] = (
    1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 100.0, 1e3, 1e4, 1e5, 1e6
)

#: Multipliers of the data-driven base width: a factor-16 range of kernel widths centred on it.
DEFAULT_BANDWIDTH_MULTIPLIERS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)

_ESTIMATORS = ("biased", "unbiased", "linear")
_BANDWIDTHS = ("median", "mean")


def mmd_loss(
    source: torch.Tensor,
    target: torch.Tensor,
    sigmas: Sequence[float] | None = None,
    estimator: str = "unbiased",
    bandwidth: str = "median",
    multipliers: Sequence[float] = DEFAULT_BANDWIDTH_MULTIPLIERS,
    variances: Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Squared MMD between ``source`` (n, d) and ``target`` (m, d) features with a multi-kernel Gaussian RBF.

    Kernel (Eq. 7, summed over kernels):

    * ``sigmas=[σ_1, ...]``: :math:`\kappa = \sum_k \exp(-\lVert x-y \rVert^2 / (2\sigma_k^2))`.
    * ``variances=[s_1, ...]``: :math:`\kappa = \sum_k \exp(-\lVert x-y \rVert^2 / (2 s_k))`. This is what the
      paper's code computes with its list of "sigmas": ``variances=PAPER_CODE_VARIANCES`` with
      ``estimator="biased"`` reproduces the paper's code exactly. Note the difference: the paper's code value
      ``s = 100`` is a kernel of width σ = 10, not σ = 100.
    * neither (default): data-driven widths :math:`\sigma_k = b \cdot \text{multipliers}_k`, with ``b`` the
      (lower) median, or the mean, of the Euclidean distances between all distinct pairs of the pooled batch
      (``bandwidth="median"`` / ``"mean"``). ``b`` is detached from the graph: the features are not trained to
      move the kernel width.

    Estimators, for :math:`K_{ss}, K_{tt}, K_{st}` the kernel matrices within and across domains:

    * ``"biased"``: mean of all entries of each matrix, diagonals included (V-statistic; the paper's code).
    * ``"unbiased"``: drops the diagonal of :math:`K_{ss}` and :math:`K_{tt}`, dividing by n(n-1) and m(m-1),
      and keeps all n·m cross pairs (Gretton et al. 2012, Eq. 3). Eq. 6 of the paper, written for n = m = q,
      also drops the i = j cross pairs; both are unbiased. May be negative when the domains match.
    * ``"linear"``: the linear-time estimator of Gretton et al. 2012 (Lemma 14): consecutive samples are paired,
      :math:`\frac{1}{q/2}\sum_i k(x_{2i-1}, x_{2i}) + k(y_{2i-1}, y_{2i}) - k(x_{2i-1}, y_{2i}) - k(x_{2i}, y_{2i-1})`.
      With n != m only the first ``q = min(n, m)`` samples of each domain are used (an odd last one is dropped).
      A data-driven bandwidth still looks at all pairs of the pooled batch, so only fixed widths are linear time.

    Returns a scalar tensor with the dtype and device of the inputs, differentiable with respect to both.
    """
    _check_features(source, target)
    _check_options(sigmas, variances, estimator, bandwidth, multipliers)
    n, m = source.shape[0], target.shape[0]
    if estimator != "biased" and min(n, m) < 2:
        raise ValueError(f"the {estimator} estimator needs at least 2 samples per domain, got n={n}, m={m}")

    pooled = torch.cat([source, target])
    # Distances are translation invariant; centring reduces round-off in the ||x||^2 + ||y||^2 - 2<x, y> form.
    pooled = pooled - pooled.mean(dim=0, keepdim=True).detach()

    fixed = _fixed_variances(sigmas, variances, like=pooled)
    needs_all_pairs = estimator != "linear" or fixed is None
    squared_distances = _pairwise_squared_distances(pooled) if needs_all_pairs else None
    kernel_variances = fixed if fixed is not None else _data_driven_variances(squared_distances, bandwidth, multipliers)

    if estimator == "linear":
        return _linear_time_mmd(pooled[:n], pooled[n:], kernel_variances)

    kernel = _multi_rbf(squared_distances, kernel_variances)
    k_ss, k_tt, k_st = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    if estimator == "biased":
        return k_ss.mean() + k_tt.mean() - 2 * k_st.mean()
    within_source = (k_ss.sum() - k_ss.diagonal().sum()) / (n * (n - 1))
    within_target = (k_tt.sum() - k_tt.diagonal().sum()) / (m * (m - 1))
    return within_source + within_target - 2 * k_st.mean()


class MMDLoss(nn.Module):
    """Module form of :func:`mmd_loss`; the constructor takes the same options.

    Example::

        >>> loss = MMDLoss(variances=PAPER_CODE_VARIANCES, estimator="biased")  # the paper's code
        >>> loss(torch.randn(32, 64), torch.randn(24, 64))
    """

    def __init__(
        self,
        sigmas: Sequence[float] | None = None,
        estimator: str = "unbiased",
        bandwidth: str = "median",
        multipliers: Sequence[float] = DEFAULT_BANDWIDTH_MULTIPLIERS,
        variances: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        _check_options(sigmas, variances, estimator, bandwidth, multipliers)
        self.sigmas = None if sigmas is None else tuple(sigmas)
        self.variances = None if variances is None else tuple(variances)
        self.estimator = estimator
        self.bandwidth = bandwidth
        self.multipliers = tuple(multipliers)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mmd_loss(
            source,
            target,
            sigmas=self.sigmas,
            estimator=self.estimator,
            bandwidth=self.bandwidth,
            multipliers=self.multipliers,
            variances=self.variances,
        )

    def extra_repr(self) -> str:
        if self.sigmas is not None:
            kernel = f"sigmas={self.sigmas}"
        elif self.variances is not None:
            kernel = f"variances={self.variances}"
        else:
            kernel = f"bandwidth={self.bandwidth!r}, multipliers={self.multipliers}"
        return f"estimator={self.estimator!r}, {kernel}"


def _check_features(source: torch.Tensor, target: torch.Tensor) -> None:
    if source.dim() != 2 or target.dim() != 2:
        raise ValueError(
            f"expected 2-D (samples, features) inputs, got {tuple(source.shape)} and {tuple(target.shape)}"
        )
    if source.shape[1] != target.shape[1]:
        raise ValueError(f"feature sizes differ: {source.shape[1]} vs {target.shape[1]}")
    if source.shape[0] == 0 or target.shape[0] == 0:
        raise ValueError("both domains need at least one sample")


def _check_options(
    sigmas: Sequence[float] | None,
    variances: Sequence[float] | None,
    estimator: str,
    bandwidth: str,
    multipliers: Sequence[float],
) -> None:
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
    if bandwidth not in _BANDWIDTHS:
        raise ValueError(f"bandwidth must be one of {_BANDWIDTHS}, got {bandwidth!r}")
    if sigmas is not None and variances is not None:
        raise ValueError("give sigmas or variances, not both")
    for name, widths in (("sigmas", sigmas), ("variances", variances), ("multipliers", multipliers)):
        if widths is not None and (len(widths) == 0 or min(widths) <= 0):
            raise ValueError(f"{name} must be a non-empty sequence of positive numbers, got {widths}")


def _fixed_variances(
    sigmas: Sequence[float] | None, variances: Sequence[float] | None, like: torch.Tensor
) -> torch.Tensor | None:
    """Kernel variances from explicit widths, or None when the widths are to come from the data."""
    if sigmas is None and variances is None:
        return None
    values = torch.as_tensor(sigmas if sigmas is not None else variances, dtype=like.dtype, device=like.device)
    return values.square() if sigmas is not None else values


def _data_driven_variances(
    squared_distances: torch.Tensor, bandwidth: str, multipliers: Sequence[float]
) -> torch.Tensor:
    squared = squared_distances.detach()
    rows, cols = torch.triu_indices(*squared.shape, offset=1, device=squared.device)
    distances = squared[rows, cols].sqrt()
    base = distances.median() if bandwidth == "median" else distances.mean()
    # Identical points would give a zero width and 0/0 in the kernel.
    base = base.clamp_min(torch.finfo(squared.dtype).eps)
    sigmas = base * torch.as_tensor(multipliers, dtype=squared.dtype, device=squared.device)
    return sigmas.square()


def _pairwise_squared_distances(points: torch.Tensor) -> torch.Tensor:
    # One matrix product instead of an (N, N, d) difference tensor; clamp the round-off negatives.
    squared_norms = points.square().sum(1)
    squared = (squared_norms.unsqueeze(1) + squared_norms - 2 * points @ points.T).clamp_min(0)
    # Exact zeros on the diagonal: round-off there would be amplified by narrow kernels (variance 1e-6).
    self_pairs = torch.eye(points.shape[0], dtype=torch.bool, device=points.device)
    return squared.masked_fill(self_pairs, 0)


def _multi_rbf(squared_distances: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """Σ_k exp(-d² / (2 v_k)), elementwise over any shape of ``squared_distances``."""
    scaled = squared_distances.unsqueeze(-1) / (2 * variances)
    return torch.exp(-scaled).sum(-1)


def _linear_time_mmd(source: torch.Tensor, target: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    pairs = min(source.shape[0], target.shape[0]) // 2
    x_odd, x_even = source[0 : 2 * pairs : 2], source[1 : 2 * pairs : 2]
    y_odd, y_even = target[0 : 2 * pairs : 2], target[1 : 2 * pairs : 2]

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _multi_rbf((a - b).square().sum(1), variances)

    h = kernel(x_odd, x_even) + kernel(y_odd, y_even) - kernel(x_odd, y_even) - kernel(x_even, y_odd)
    return h.mean()
