"""How far target data sits from a reference set, in a pretrained model's feature space.

Two scores, both on pooled features (n, H):
- `mmd2(x, y)`: the unbiased squared maximum mean discrepancy with a Gaussian kernel whose bandwidth
  is the median pairwise distance (Gretton et al., JMLR 2012). 0 when both come from one
  distribution; grows with the shift.
- `c2st(x, y)`: a classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): the cross-validated
  accuracy of a logistic regression telling x from y, as 2 * |acc - 0.5| in [0, 1] (0: the sets
  are indistinguishable, 1: perfectly separable).

`tunewright advise` uses them, and so can domain adaptation (a shift score before and after).
"""
from __future__ import annotations

import numpy as np


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)   # (n, m)


def mmd2(x, y, bandwidth: float | None = None) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    z = np.concatenate([x, y])
    d = _sqdist(z, z)
    if bandwidth is None:
        bandwidth = float(np.sqrt(np.median(d[np.triu_indices(len(z), 1)]))) or 1.0
    k = np.exp(-d / (2 * bandwidth ** 2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def c2st(x, y, seed: int = 0, folds: int = 5) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z = np.concatenate([x, y])
    t = np.r_[np.zeros(len(x)), np.ones(len(y))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1))
    acc = cross_val_score(clf, z, t, cv=folds).mean()
    return float(min(1.0, 2 * abs(acc - 0.5)))
