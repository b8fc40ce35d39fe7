"""What running a network needs, at training and at inference alike: the device, the random seeds, a prepared
split as standardised tensors, and the forward pass in evaluation mode.

The trainer (:mod:`deepmerge_da.training.loop`), the per-epoch selection criteria
(:mod:`deepmerge_da.training.selection`), evaluation, figures and prediction all use these, so none of them needs
the training loop itself.
"""
from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from deepmerge_da.io.hdf5 import read_image_set
from deepmerge_da.training.gpu_alloc import claim_device

log = logging.getLogger(__name__)


@dataclass
class DomainTensors:
    """One split of one domain, standardised with its domain's training statistics."""

    images: torch.Tensor
    labels: torch.Tensor
    object_id: np.ndarray
    attrs: dict

    def describe(self) -> dict:
        """What inference needs to preprocess new images like these (plain types only)."""
        a = self.attrs
        return {"filters": list(a.get("filters", [])), "pixel_scale": float(a.get("pixel_scale", float("nan"))),
                "image_size": int(self.images.shape[-1]), "channel_mean": np.asarray(a["channel_mean"]).tolist(),
                "channel_std": np.asarray(a["channel_std"]).tolist(), "data_source": a.get("data_source", ""),
                "units": a.get("units", "")}

    def __len__(self) -> int:
        return len(self.labels)


def load_split(path: str | os.PathLike, split: str, device: torch.device | str = "cpu") -> DomainTensors:
    """Read one split into contiguous tensors, standardised per channel (training statistics)."""
    data = read_image_set(path, split=split)
    mean = torch.as_tensor(np.asarray(data.attrs["channel_mean"]), dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.as_tensor(np.asarray(data.attrs["channel_std"]), dtype=torch.float32).view(1, -1, 1, 1)
    images = (torch.from_numpy(data.images) - mean) / std
    return DomainTensors(images.contiguous().to(device), torch.from_numpy(data.labels).long().to(device),
                         data.object_id, data.attrs)


def resolve_device(request: str = "auto") -> torch.device:
    """``auto``: a free CUDA device (claimed through :mod:`deepmerge_da.training.gpu_alloc`) when present, else CPU."""
    if request == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        index = claim_device(torch.cuda.device_count(), wait_s=60.0)
        if index < 0:
            log.warning("every visible GPU is claimed by another training job; sharing cuda:0")
            index = 0
        return torch.device(f"cuda:{index}")
    device = torch.device(request)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {request!r} was requested but CUDA is not available")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # Identical metrics for the same seed on CPU; on CUDA some kernels have no deterministic variant.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    # That mode also fills every new tensor with NaN, a guard against kernels that read memory they never
    # wrote; ours write before they read, and the fill costs ~10 % of a DeepMerge training step on a CPU.
    torch.utils.deterministic.fill_uninitialized_memory = False


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 512,
                   with_features: bool = False):
    """Logits (and features) of ``images`` in evaluation mode, batch by batch."""
    model.eval()
    logits, features = [], []
    for start in range(0, len(images), batch_size):
        lo, fe = model(images[start:start + batch_size])
        logits.append(lo.float())
        if with_features:
            features.append(fe.float())
    logits = torch.cat(logits) if logits else torch.empty(0, 2)
    return (logits, torch.cat(features)) if with_features else logits
