import numpy as np
import pytest
from sklearn import metrics as skm

from deepmerge_da.report.metrics import classification_metrics, roc_auc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    p = np.clip(0.3 * labels + rng.uniform(0, 0.7, 300), 0, 1)
    p[:20] = 0.5  # ties and the threshold itself
    m = classification_metrics(labels, p)
    pred = (p >= 0.5).astype(int)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(labels, p))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(labels, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(labels, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(labels, pred))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(labels, p))
    assert np.allclose(m["confusion_normalised"], skm.confusion_matrix(labels, pred, normalize="true"))


def test_degenerate_cases():
    assert np.isnan(roc_auc(np.ones(5), np.linspace(0, 1, 5)))
    m = classification_metrics(np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3]))
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["fraction_called_merger"] == 0.0
