import numpy as np
import pytest

from tunewright.analysis.cka import linear_cka


def _x(n=500, p=20, seed=0):
    return np.random.default_rng(seed).normal(size=(n, p))


def test_identical_representations_give_one():
    x = _x()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_orthogonal_transform_and_isotropic_scaling():
    x, y = _x(seed=0), _x(seed=1) @ np.random.default_rng(2).normal(size=(20, 30)) + 0.5 * _x(seed=0)[:, :1]
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(20, 20)))       # (20, 20) orthogonal
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, rel=1e-9)
    assert linear_cka(7.5 * x, 0.01 * y) == pytest.approx(base, rel=1e-9)
    assert linear_cka(x @ q, x) == pytest.approx(1.0, abs=1e-9)


def test_not_invariant_to_arbitrary_linear_maps():
    x = _x()
    a = np.diag(np.r_[np.full(10, 10.0), np.full(10, 0.1)])                   # anisotropic scaling
    assert linear_cka(x, x @ a) < 0.9


def test_independent_random_features_are_near_zero():
    x, y = _x(n=4000, p=10, seed=0), _x(n=4000, p=10, seed=1)
    assert linear_cka(x, y) < 0.02


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        linear_cka(_x(n=10), _x(n=11))
