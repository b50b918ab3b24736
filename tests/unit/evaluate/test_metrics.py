import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss, r2_score

from tunewright.evaluate import classification_metrics, lm_metrics, multilabel_metrics, regression_metrics


def test_classification_matches_sklearn():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 4))
    labels = rng.integers(0, 4, size=200)
    m = classification_metrics(logits, labels, 4)
    assert m["accuracy"] == pytest.approx((logits.argmax(1) == labels).mean())
    assert m["macro_f1"] == pytest.approx(f1_score(labels, logits.argmax(1), average="macro"))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert m["loss"] == pytest.approx(log_loss(labels, p, labels=[0, 1, 2, 3]))


def test_regression_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.normal(size=50)
    pred = y + rng.normal(scale=0.3, size=50)
    m = regression_metrics(pred, y)
    assert m["mse"] == pytest.approx(((pred - y) ** 2).mean())
    assert m["r2"] == pytest.approx(r2_score(y, pred))


def test_multilabel_and_lm():
    logits = np.array([[2.0, -1.0], [-3.0, 4.0]])
    labels = np.array([[1.0, 0.0], [0.0, 0.0]])
    m = multilabel_metrics(logits, labels)
    assert m["accuracy"] == 0.5
    lm = lm_metrics(total_nll=20.0, total_tokens=10)
    assert lm["loss"] == 2.0 and lm["perplexity"] == pytest.approx(np.exp(2.0))
