"""The evaluation of a trained run on the source and target test splits (metrics: :mod:`.metrics`)."""
from __future__ import annotations

import csv
import json
import os

import torch

from .atomic import atomic_path, write_text_atomic
from .checkpoint import load_checkpoint
from .metrics import classification_metrics
from .models import build_network
from .train import load_split, predict_logits

def load_model(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    state, meta = load_checkpoint(checkpoint)
    hp = meta.get("hyperparameters", {})
    model = build_network(meta["network"], in_channels=len(meta["input"]["trained_on"]["filters"]) or 3,
                          dropout=float(hp.get("dropout") or 0.0))
    model.load_state_dict(state)
    return model.to(device).eval(), meta


def evaluate_run(*, checkpoint: str, source: str, target: str, metrics_path: str, predictions_path: str,
                 threads: int = 1, device: str = "cpu") -> dict:
    """Score a checkpoint on the source and target *test* splits; write metrics JSON and predictions CSV."""
    torch.set_num_threads(max(1, int(threads)))
    model, meta = load_model(checkpoint, device)
    result = {k: meta[k] for k in ("pair", "network", "method", "seed", "epoch")}
    result["checkpoint"] = str(checkpoint)
    rows = []
    for domain, path in (("source", source), ("target", target)):
        test = load_split(path, "test", device)
        p = torch.softmax(predict_logits(model, test.images), dim=1)[:, 1].cpu().numpy()
        labels = test.labels.cpu().numpy()
        result[domain] = classification_metrics(labels, p)
        rows += [{"domain": domain, "object_id": o, "label": int(y), "p_merger": float(q)}
                 for o, y, q in zip(test.object_id, labels, p)]
    write_text_atomic(metrics_path, json.dumps(result, indent=2))
    with atomic_path(predictions_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["domain", "object_id", "label", "p_merger"])
        writer.writeheader()
        writer.writerows(rows)
    return result
