"""Test-set metrics with mergers as the positive class (no PyTorch: tables and plots import this quickly).

Metrics: ROC AUC, accuracy, precision, recall, F1, Brier score (mean squared error of p_merger), and
the confusion matrix normalised per true class (rows: true non-merger, true merger; columns: predicted
non-merger, predicted merger).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

METRICS = ("auc", "accuracy", "precision", "recall", "f1", "brier")

#: A run has collapsed when at least this share of its target images falls in one predicted class.
COLLAPSE_SHARE = 0.99


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


def collapse_report(predicted_merger) -> dict:
    """``target_predicted_merger_fraction`` and ``target_collapsed`` of a run's predictions on target images.

    ``predicted_merger``: one boolean per image (called a merger). Collapsed: at least :data:`COLLAPSE_SHARE`
    (99 %) of the images are in one predicted class -- the network no longer tells the classes apart there, and
    its metrics are those of a constant classifier. Needs no labels. No images: fraction NaN, not collapsed.
    """
    called = np.asarray(predicted_merger, dtype=bool)
    fraction = float(called.mean()) if called.size else float("nan")
    return {"target_predicted_merger_fraction": fraction,
            "target_collapsed": bool(max(fraction, 1.0 - fraction) >= COLLAPSE_SHARE)}
