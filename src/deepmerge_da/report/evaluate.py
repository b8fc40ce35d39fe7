"""The evaluation of a trained run on the source and target test splits (metrics: :mod:`.metrics`)."""
from __future__ import annotations

import csv
import json

import torch

from deepmerge_da.io.atomic import atomic_path, write_text_atomic
from deepmerge_da.io.checkpoint import load_model
from deepmerge_da.report.metrics import classification_metrics, collapse_report
from deepmerge_da.training.runtime import load_split, predict_logits


def evaluate_run(*, checkpoint: str, source: str, target: str, metrics_path: str, predictions_path: str,
                 threads: int = 1, device: str = "cpu") -> dict:
    """Score a checkpoint on the source and target *test* splits; write metrics JSON and predictions CSV.

    The metrics also say whether the run collapsed to one class on the target (``target_collapsed``, with
    ``target_predicted_merger_fraction``; :func:`deepmerge_da.report.metrics.collapse_report`). A checkpoint that
    cannot be used (damaged, non-finite weights, ...) is a :class:`deepmerge_da.io.checkpoint.CheckpointError`.
    """
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
        if domain == "target":
            result.update(collapse_report(p >= 0.5))
        rows += [{"domain": domain, "object_id": o, "label": int(y), "p_merger": float(q)}
                 for o, y, q in zip(test.object_id, labels, p, strict=True)]
    write_text_atomic(metrics_path, json.dumps(result, indent=2))
    with atomic_path(predictions_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["domain", "object_id", "label", "p_merger"])
        writer.writeheader()
        writer.writerows(rows)
    return result
