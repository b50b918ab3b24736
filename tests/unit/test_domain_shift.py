import numpy as np

from tunewright.domain_shift import c2st, mmd2


def test_shift_scores_separate_same_from_shifted():
    rng = np.random.default_rng(0)
    x, same, shifted = rng.normal(size=(150, 8)), rng.normal(size=(150, 8)), rng.normal(size=(150, 8)) + 1.0
    assert abs(mmd2(x, same)) < 0.02
    assert mmd2(x, shifted) > 0.1
    assert c2st(x, same) < 0.3
    assert c2st(x, shifted) > 0.8
