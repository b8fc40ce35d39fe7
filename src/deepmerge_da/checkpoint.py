"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors plus metadata as JSON text.

A checkpoint is a dict ``{"state_dict": {name: tensor}, "metadata": "<json>"}``; the metadata says what
inference needs (network, filters, pixel scale, input size, normalisation statistics of the training
data, hyperparameters, package version). A ``<file>.sha256`` beside it holds its digest.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .atomic import atomic_path, write_text_atomic


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, metadata: dict) -> None:
    """Write the model's weights and ``metadata`` atomically, then the sha256 file."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "metadata": json.dumps(metadata, default=str)}, tmp)
    write_text_atomic(path.with_name(path.name + ".sha256"), f"{file_sha256(path)}  {path.name}\n")


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> tuple[dict, dict]:
    """Return (state_dict, metadata); with ``verify`` the sha256 file must match when present."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    sha_file = path.with_name(path.name + ".sha256")
    if verify and sha_file.exists():
        expected = sha_file.read_text().split()[0]
        actual = file_sha256(path)
        if expected != actual:
            raise ValueError(f"checkpoint {path}: sha256 {actual} does not match {sha_file} ({expected})")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob or "metadata" not in blob:
        raise ValueError(f"{path} is not a DeepMerge-DA checkpoint (no state_dict/metadata)")
    return blob["state_dict"], json.loads(blob["metadata"])
