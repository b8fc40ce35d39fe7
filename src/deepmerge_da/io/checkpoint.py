"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors plus metadata as JSON text.

A checkpoint is a dict ``{"state_dict": {name: tensor}, "metadata": "<json>"}``; the metadata says what
inference needs (network, filters, pixel scale, input size, normalisation statistics of the training
data, hyperparameters, package version). A ``<file>.sha256`` beside it holds its digest.

The same weights and metadata always give the same bytes (and digest). Every way a file can fail to be a usable
checkpoint (empty, truncated, not a checkpoint, metadata that cannot build its network, non-finite weights) is
a :class:`CheckpointError` naming the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

from deepmerge_da.grid import NETWORKS
from deepmerge_da.io.atomic import atomic_path, write_text_atomic
from deepmerge_da.nn.models import build_network


class CheckpointError(ValueError):
    """A file that is not a usable DeepMerge-DA checkpoint; the message names the file and what is wrong."""


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module | dict, metadata: dict) -> None:
    """Write a model's weights (or a state dict) and ``metadata`` atomically, then the sha256 file."""
    path = Path(path)
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    # Contiguous: the bytes depend on the weights only, not on the memory layout they were trained in.
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    # Saved to an open file, torch names the archive inside the zip "archive"; saved to a path, it would name it
    # after the (random) temporary file, and identical weights would give different bytes and digests.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save({"state_dict": state, "metadata": json.dumps(metadata, default=str)}, f)
    write_text_atomic(path.with_name(path.name + ".sha256"), f"{file_sha256(path)}  {path.name}\n")


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> tuple[dict, dict]:
    """Return (state_dict, metadata); with ``verify`` the sha256 file must match when present.

    A missing file is a FileNotFoundError; a file that is not a checkpoint of this package (empty, truncated, text,
    any other pickle) a :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a model.pt file")
    sha_file = path.with_name(path.name + ".sha256")
    if verify and sha_file.exists():
        expected = sha_file.read_text().split()[0]
        actual = file_sha256(path)
        if expected != actual:
            raise CheckpointError(f"checkpoint {path}: sha256 {actual} does not match {sha_file} ({expected})")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    # torch.save writes a zip archive; anything else would reach torch.load's pickle fallback and its long advice.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint: no zip archive (truncated, or not "
                              "written by torch.save)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain values (refused by "
                              "torch.load(weights_only=True)); it was not written by deepmerge-da") from None
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, KeyError, ... for damaged archives
        reason = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} cannot be read (damaged archive: {reason})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("state_dict"), dict) or "metadata" not in blob \
            or not all(isinstance(v, torch.Tensor) for v in blob["state_dict"].values()):
        raise CheckpointError(f"checkpoint {path} is not a DeepMerge-DA checkpoint (no state_dict of tensors and "
                              "metadata)")
    try:
        metadata = json.loads(blob["metadata"])
    except (TypeError, ValueError):
        metadata = None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"checkpoint {path}: its metadata is not a JSON object")
    return blob["state_dict"], metadata


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold a NaN or an infinity (one device sync)."""
    names = [k for k, v in state.items() if v.is_floating_point()]
    if not names:
        return []
    finite = torch.stack([torch.isfinite(state[k]).all() for k in names]).tolist()
    return [k for k, ok in zip(names, finite, strict=True) if not ok]


def load_model(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The network of a checkpoint on ``device`` in evaluation mode, and its metadata.

    Refused with a :class:`CheckpointError` naming the file: metadata naming no known network or lacking
    ``input.trained_on`` (its filters and image size), weights that do not fit that network, and weights that hold
    non-finite values (a diverged run).
    """
    state, meta = load_checkpoint(checkpoint)
    network = meta.get("network")
    if network not in NETWORKS:
        raise CheckpointError(f"checkpoint {checkpoint}: its metadata names network {network!r}, not one of "
                              f"{', '.join(NETWORKS)}")
    inputs = meta.get("input")
    trained_on = inputs.get("trained_on") if isinstance(inputs, dict) else None
    missing = [k for k in ("filters", "image_size") if not isinstance(trained_on, dict) or k not in trained_on]
    if missing:
        raise CheckpointError(f"checkpoint {checkpoint} does not record its input (no input.trained_on."
                              f"{' / '.join(missing)} in its metadata)")
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"checkpoint {checkpoint}: {len(bad)} of {len(state)} tensors hold non-finite values "
                              f"(first: {bad[0]}); the run diverged")
    hp = meta.get("hyperparameters") or {}
    model = build_network(network, in_channels=len(trained_on["filters"]) or 3,
                          dropout=float(hp.get("dropout") or 0.0))
    expected = model.state_dict()
    unfit = sorted(expected.keys() ^ state.keys()) or \
        [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if unfit:
        raise CheckpointError(f"checkpoint {checkpoint}: its weights do not fit the {network} network its metadata "
                              f"names ({len(unfit)} tensors missing, unexpected or of another shape; first: "
                              f"{unfit[0]})")
    model.load_state_dict(state)
    return model.to(device).eval(), meta
