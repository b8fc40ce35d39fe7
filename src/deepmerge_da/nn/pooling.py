"""2x2 max pooling (stride 2) with PyTorch's results and a faster CPU forward.

On CPU, ``torch.nn.functional.max_pool2d`` spends ~20 % of a DeepMerge training step in its forward, which
finds each window's maximum and its index one element at a time.  Three elementwise maxima over the four
strided quarters of the input give the same maxima 2-3x faster; the index is then derived from the same
comparisons, following ``max_pool2d``'s convention (the flat ``row * W + col`` of the window's *first*
maximum in row-major order), so that ``max_pool2d``'s own backward kernel routes the gradient.  Outputs and
gradients are bit for bit those of ``nn.MaxPool2d(2)`` (``tests/test_models.py``); the one exception is a
window that holds a NaN, whose gradient may go to another element than ``max_pool2d`` picks (the output is
NaN either way).  That speed-up holds in the default (contiguous) layout only: in the channels-last layout, in which
the trainer runs DeepMerge, ``max_pool2d``'s own kernel is 1.8x faster than these strided maxima (forward and backward
of DeepMerge's three layers at batch 32 on one thread, docs/performance.md), so channels-last inputs and other devices
use ``max_pool2d`` itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def window_origin_index(h: int, w: int, width: int, device: torch.device) -> torch.Tensor:
    """(h, w) int64: the flat index ``2 i * width + 2 j`` of the top-left pixel of output pixel (i, j)'s window.

    Not cached: it is h * w integers, and torch.compile traces it as it is."""
    rows = torch.arange(h, device=device).view(h, 1) * (2 * width)
    return rows + torch.arange(w, device=device).view(1, w) * 2


class MaxPool2x2Function(torch.autograd.Function):
    """``max_pool2d(x, 2)`` of an (N, C, H, W) tensor (odd trailing rows/columns dropped, as ``floor`` does)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        h, w = height // 2, width // 2
        top_left, top_right, bottom_left, bottom_right = (x[..., i:2 * h:2, j:2 * w:2] for i in (0, 1) for j in (0, 1))
        top, bottom = torch.maximum(top_left, top_right), torch.maximum(bottom_left, bottom_right)
        out = torch.maximum(top, bottom)
        if ctx.needs_input_grad[0]:
            # strict ">" keeps the first of equal values, as max_pool2d does (ties are common after batch norm:
            # every pixel that ReLU set to zero has the same normalised value)
            use_bottom = bottom > top
            right = top_right > top_left
            right ^= use_bottom & (right ^ (bottom_right > bottom_left))
            index = use_bottom.to(torch.int64).mul_(width).add_(right).add_(window_origin_index(h, w, width, x.device))
            ctx.save_for_backward(x, index)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        x, index = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(grad_out, x, [2, 2], [2, 2], [0, 0], [1, 1], False,
                                                               index)


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)``, computed by :class:`MaxPool2x2Function` for a CPU tensor in the default layout."""
    if x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous():
        return F.max_pool2d(x, 2)
    return MaxPool2x2Function.apply(x)


class MaxPool2x2(nn.Module):
    """Drop-in for ``nn.MaxPool2d(2)`` (same outputs and gradients); see the module docstring."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool_2x2(x)


def with_nn_max_pool2d(model: nn.Module) -> nn.Module:
    """``model``, its :class:`MaxPool2x2` layers replaced in place by ``nn.MaxPool2d(2)`` (the layer as usually
    written)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, MaxPool2x2):
                setattr(module, name, nn.MaxPool2d(2))
    return model
