"""Linear centered kernel alignment (Kornblith, Norouzi, Lee & Hinton, ICML 2019).

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)     with X, Y column-centred

X is (n, p1) and Y is (n, p2): the same n examples seen by two layers (or one layer before and
after fine-tuning). It is invariant to orthogonal transforms and isotropic scaling of either side,
not to arbitrary invertible linear maps, which is why it compares networks trained apart.

Hand-written rather than imported: it is six lines, no maintained package ships it without a
heavy dependency, and writing the feature-space form (p x p Gram matrices, not n x n) keeps memory
at O(p^2) for the few thousand examples an analysis uses.
"""
from __future__ import annotations

import numpy as np


def linear_cka(x, y) -> float:
    """Linear CKA of x (n, p1) and y (n, p2) in [0, 1]; 1 means the same geometry."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka needs (n, p1) and (n, p2) arrays with the same n, got {x.shape}, {y.shape}")
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    cross = np.linalg.norm(y.T @ x, "fro") ** 2            # (p2, p1)
    norm = np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")
    return float(cross / norm) if norm > 0 else 0.0
