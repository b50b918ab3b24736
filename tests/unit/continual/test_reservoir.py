import numpy as np
from scipy import stats

from tunewright.continual import Reservoir


def test_reservoir_holds_a_uniform_sample_of_the_stream():
    # Over many seeded runs, every stream position must be kept equally often (capacity / n):
    # a chi-square test of the per-position counts against the uniform expectation.
    n, capacity, runs = 200, 20, 2000
    counts = np.zeros(n)
    for seed in range(runs):
        buf = Reservoir(capacity, seed=seed)
        for i in range(n):
            buf.add(i)
        assert len(buf) == capacity and len(set(buf.items)) == capacity
        counts[buf.items] += 1
    expected = np.full(n, runs * capacity / n)
    p = stats.chisquare(counts, expected).pvalue
    assert p > 0.01, p
    # and a biased scheme (keep the first items) fails the same test
    biased = np.zeros(n)
    biased[:capacity] = runs
    assert stats.chisquare(biased, expected).pvalue < 1e-6


def test_reservoir_state_round_trips():
    a = Reservoir(5, seed=1)
    for i in range(50):
        a.add(i)
    b = Reservoir(1, seed=9)
    b.load_state_dict(a.state_dict())
    for i in range(50, 80):
        a.add(i)
        b.add(i)
    assert a.items == b.items
