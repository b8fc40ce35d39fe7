"""Test-set metrics with mergers as the positive class, and the evaluation of a trained run.

Metrics: ROC AUC, accuracy, precision, recall, F1, Brier score (mean squared error of p_merger), and
the confusion matrix normalised per true class (rows: true non-merger, true merger; columns: predicted
non-merger, predicted merger).
"""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import torch
from scipy.stats import rankdata

from .atomic import atomic_path, write_text_atomic
from .checkpoint import load_checkpoint
from .models import build_network
from .train import load_split, predict_logits

METRICS = ("auc", "accuracy", "precision", "recall", "f1", "brier")


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count one half)."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(labels: np.ndarray, p_merger: np.ndarray, threshold: float = 0.5) -> dict:
    """All metrics of the paper's tables for one domain's test set."""
    labels = np.asarray(labels).astype(int)
    p_merger = np.asarray(p_merger, dtype=float)
    pred = (p_merger >= threshold).astype(int)
    tp = int(np.sum((pred == 1) & (labels == 1)))
    fp = int(np.sum((pred == 1) & (labels == 0)))
    fn = int(np.sum((pred == 0) & (labels == 1)))
    tn = int(np.sum((pred == 0) & (labels == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    counts = np.array([[tn, fp], [fn, tp]], dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    return {
        "auc": roc_auc(labels, p_merger),
        "accuracy": (tp + tn) / len(labels) if len(labels) else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "brier": float(np.mean((p_merger - labels) ** 2)) if len(labels) else float("nan"),
        "confusion_normalised": np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0).tolist(),
        "fraction_called_merger": float(pred.mean()) if len(pred) else float("nan"),
        "n": int(len(labels)),
    }


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
