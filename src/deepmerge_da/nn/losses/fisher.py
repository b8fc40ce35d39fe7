r"""Fisher loss, DeepMerge II Sec. 2.2, Eq. 10 (Zhang et al. 2020a).

For source features :math:`h` with class centres :math:`c_m` and global centre
:math:`\bar c = \frac{1}{M}\sum_m c_m`,

.. math::
    \mathrm{tr}(S_w) = \sum_{m=1}^{M}\sum_{j=1}^{n_m} \lVert h_{mj} - c_m \rVert^2, \qquad
    \mathrm{tr}(S_b) = \sum_{m=1}^{M} \lVert c_m - \bar c \rVert^2,

and the loss is the trace ratio :math:`L_{FL} = \lambda_w \mathrm{tr}(S_w) / (\lambda_b \mathrm{tr}(S_b))`
(the paper's choice) or the trace difference :math:`\lambda_w \mathrm{tr}(S_w) - \lambda_b \mathrm{tr}(S_b)`.
Minimising it makes classes compact and pushes their centres apart. In the ratio form the weights only act
through :math:`\lambda_{FL} = \lambda_w / \lambda_b`, as the paper notes.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fisher_loss", "FisherLoss"]

_FORMS = ("ratio", "difference")


def fisher_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    centers: torch.Tensor | None = None,
    lambda_w: float = 1.0,
    lambda_b: float = 1.0,
    form: str = "ratio",
    eps: float = 1e-8,
) -> torch.Tensor:
    r"""Fisher loss of source ``features`` (n, d) with integer class ``labels`` (n,).

    Args:
        centers: (C, d) class centres, e.g. learnable ones; labels must lie in [0, C) and
            :math:`\mathrm{tr}(S_b)` runs over all C centres. ``None`` uses the batch mean of each class
            *present in the batch*: absent classes have no centre and are left out of both traces.
        form: ``"ratio"`` (:math:`\lambda_w \mathrm{tr}(S_w) / (\lambda_b \mathrm{tr}(S_b) + \epsilon)`) or
            ``"difference"`` (:math:`\lambda_w \mathrm{tr}(S_w) - \lambda_b \mathrm{tr}(S_b)`).
        eps: keeps the ratio finite when the centres coincide. With batch means this happens when the batch
            holds a single class; the ratio is then meaningless, so sample batches that hold every class.

    Both traces are sums over samples and classes, not means, as in Eq. 10.
    """
    if form not in _FORMS:
        raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f"expected features (n, d) and labels (n,), got {tuple(features.shape)} and {tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got {labels.dtype}")

    if centers is None:
        centers, labels = _batch_class_means(features, labels)
    elif centers.dim() != 2 or centers.shape[1] != features.shape[1]:
        raise ValueError(f"centers must be (C, {features.shape[1]}), got {tuple(centers.shape)}")

    within = (features - centers[labels]).square().sum()
    between = (centers - centers.mean(dim=0)).square().sum()
    if form == "ratio":
        return lambda_w * within / (lambda_b * between + eps)
    return lambda_w * within - lambda_b * between


class FisherLoss(nn.Module):
    r"""Module form of :func:`fisher_loss`.

    With ``learnable_centers=True`` the (num_classes, feature_dim) centres are an ``nn.Parameter``,
    initialised from N(0, 1) with the global torch RNG (the paper's code, ``torch.randn``); like any parameter
    they must be given to the optimizer (``model`` parameters alone do not include them). With
    ``learnable_centers=False`` the centres are the batch class means and ``num_classes`` / ``feature_dim`` are
    not used.

    Why unit-variance centres: for M centres drawn from N(0, s²) in d dimensions :math:`\mathrm{tr}(S_b)
    \approx (M - 1) d s^2`, and for a batch of n features with mean square :math:`\langle h^2 \rangle` per
    dimension :math:`\mathrm{tr}(S_w) \approx n d (\langle h^2 \rangle + s^2)`. Batch-normalised features have
    :math:`\langle h^2 \rangle` of order one, so with s = 1 the term starts near
    :math:`(\lambda_w / \lambda_b)\, n (\langle h^2 \rangle + 1) / (M - 1)` (DeepMerge on the default sim2sim
    pair at the mmd_fisher_em preset: 1.3, with a gradient on the features half that of cross-entropy); with
    s = 0.01 it starts 10⁴ times larger and swamps every other term (docs/deviations.md).
    """

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        learnable_centers: bool = True,
        lambda_w: float = 1.0,
        lambda_b: float = 1.0,
        form: str = "ratio",
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if form not in _FORMS:
            raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.lambda_w = lambda_w
        self.lambda_b = lambda_b
        self.form = form
        self.eps = eps
        # Distinct starting points on the scale of batch-normalised features; the loss pulls each towards its class.
        self.centers = nn.Parameter(torch.randn(num_classes, feature_dim)) if learnable_centers else None

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return fisher_loss(
            features,
            labels,
            centers=self.centers,
            lambda_w=self.lambda_w,
            lambda_b=self.lambda_b,
            form=self.form,
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        centers = "learnable" if self.centers is not None else "batch means"
        return (
            f"num_classes={self.num_classes}, feature_dim={self.feature_dim}, centers={centers}, "
            f"lambda_w={self.lambda_w}, lambda_b={self.lambda_b}, form={self.form!r}"
        )


def _batch_class_means(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the classes present in the batch, and labels re-indexed into them."""
    present, index = torch.unique(labels, return_inverse=True)
    sums = features.new_zeros(present.numel(), features.shape[1]).index_add(0, index, features)
    counts = torch.bincount(index, minlength=present.numel()).to(features.dtype)
    return sums / counts.unsqueeze(1), index
