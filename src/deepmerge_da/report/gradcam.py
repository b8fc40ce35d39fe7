"""Gradient-weighted Class Activation Mapping (Grad-CAM; Selvaraju et al. 2020), Section 7.2 of the paper.

For a class ``c`` with pre-softmax score ``y^c`` and the ``K`` feature maps ``A^k`` (``Z = i x j`` pixels
each) of a chosen layer (the last convolutional layer in the paper):

- Eq. 12, importance weights (gradients global-average-pooled over the pixels)::

      alpha_k^c = (1 / Z) * sum_i sum_j  d y^c / d A^k_ij

- Eq. 13, the class activation map (only features with a positive influence on class ``c``)::

      L^c = ReLU( sum_k alpha_k^c A^k )

``L^c`` has the layer's resolution (9 x 9 for DeepMerge's last conv, 3 x 3 for ResNet18's ``layer4`` on
75 x 75 inputs); it is upsampled bilinearly to the input size and divided by its maximum, so that each
map lies in [0, 1] (an all-zero map stays zero: no pixel speaks for the class).

The hook works on any module of any network whose forward returns logits or a tuple whose first element
is the logits. The activation is taken at the module's output *before* any in-place operation that
follows (DeepMerge's conv is followed by ``ReLU(inplace=True)``): the hook hands the rest of the network a
copy, so the saved tensor keeps the module's own output.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class GradCAM:
    """Grad-CAM maps of ``model`` at ``layer`` (default ``model.last_conv``).

    Use as a context manager (or call :meth:`close`) to remove the hook::

        with GradCAM(model) as cam:
            maps = cam(images, target_class=1)   # (N, H, W) tensor in [0, 1]

    The model is put in evaluation mode (batch norm with running statistics, no dropout), so each
    image's map depends on that image only and a batch gives the same maps as one image at a time.
    """

    def __init__(self, model: nn.Module, layer: nn.Module | None = None):
        self.model = model
        self.layer = layer if layer is not None else model.last_conv
        self._activation: torch.Tensor | None = None
        self._handle = self.layer.register_forward_hook(self._keep_activation)

    def _keep_activation(self, module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"Grad-CAM needs a module that returns one tensor, got {type(output).__name__}")
        self._activation = output
        return output.clone()  # downstream in-place ops modify the copy, never the saved activation

    def close(self) -> None:
        self._handle.remove()

    def __enter__(self) -> GradCAM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def raw(self, images: torch.Tensor, target_class: int = 1) -> torch.Tensor:
        """Eq. 12-13 at the layer's resolution: (N, h, w), not upsampled or normalised."""
        self.model.eval()
        x = images.detach().clone().requires_grad_(True)  # a graph exists even if every weight is frozen
        with torch.enable_grad():
            out = self.model(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            if self._activation is None:
                raise RuntimeError("the hooked layer did not run in the model's forward pass")
            activation, self._activation = self._activation, None
            score = logits[:, target_class].sum()  # images are independent in eval mode
            (grad,) = torch.autograd.grad(score, activation)
        alpha = grad.mean(dim=(2, 3), keepdim=True)  # Eq. 12
        return F.relu((alpha * activation.detach()).sum(dim=1))  # Eq. 13

    def __call__(self, images: torch.Tensor, target_class: int = 1) -> torch.Tensor:
        """Maps upsampled bilinearly to the input size and normalised to [0, 1]: (N, H, W)."""
        cam = self.raw(images, target_class)
        cam = F.interpolate(cam[:, None], size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
        cam = cam.clamp_min(0.0)
        peak = cam.flatten(1).max(dim=1).values.view(-1, 1, 1)
        return torch.where(peak > 0, cam / peak.clamp_min(1e-30), torch.zeros_like(cam))


def gradcam_maps(model: nn.Module, images: torch.Tensor | np.ndarray, target_class: int = 1,
                 layer: nn.Module | None = None, batch_size: int = 64) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] of standardised ``images`` (N, C, H, W) for ``target_class``
    (1 = merger), at ``layer`` (default ``model.last_conv``)."""
    images = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images,
                             dtype=torch.float32)
    device = next(model.parameters()).device
    with GradCAM(model, layer) as cam:
        maps = [cam(images[i:i + batch_size].to(device), target_class).cpu()
                for i in range(0, len(images), batch_size)]
    if not maps:
        return np.zeros((0,) + tuple(images.shape[-2:]), dtype=np.float32)
    return torch.cat(maps).numpy().astype(np.float32)
