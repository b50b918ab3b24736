"""epoch_batches: pure in (seed, epoch), every index once, bucketing cuts padding."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tunewright.data import balanced_weights, epoch_batches, padding_fraction


def _flat(batches):
    return [i for b in batches for i in b]


def test_every_index_once_per_epoch():
    lengths = list(np.random.default_rng(0).integers(1, 200, 1003))
    for kw in ({}, {"lengths": lengths}, {"shuffle": False}):
        batches = epoch_batches(1003, 16, seed=1, epoch=2, **kw)
        assert sorted(_flat(batches)) == list(range(1003))
        assert sorted(len(b) for b in batches)[1:] == [16] * (len(batches) - 1)  # one short


def test_deterministic_in_seed_and_epoch():
    lengths = list(range(500))
    a = epoch_batches(500, 8, seed=5, epoch=1, lengths=lengths)
    assert a == epoch_batches(500, 8, seed=5, epoch=1, lengths=lengths)
    assert a != epoch_batches(500, 8, seed=5, epoch=2, lengths=lengths)
    assert a != epoch_batches(500, 8, seed=6, epoch=1, lengths=lengths)
    assert epoch_batches(500, 8, 5, 1) != epoch_batches(500, 8, 5, 2)


def test_sequential_without_shuffle():
    assert epoch_batches(7, 3, seed=0, epoch=0, shuffle=False) == [[0, 1, 2], [3, 4, 5], [6]]
    assert epoch_batches(0, 3, seed=0, epoch=0) == []


def test_bucketing_reduces_padding():
    lengths = list(np.random.default_rng(1).integers(5, 128, 4000))
    plain = padding_fraction(epoch_batches(4000, 32, 0, 0), lengths)
    bucketed = padding_fraction(epoch_batches(4000, 32, 0, 0, lengths=lengths), lengths)
    assert plain > 0.3 and bucketed < plain / 5


def test_bucketed_batches_are_shuffled_not_sorted():
    lengths = list(range(3200))
    batches = epoch_batches(3200, 32, 0, 0, lengths=lengths)
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima != sorted(maxima)


def test_weighted_sampling_balances_classes():
    targets = [0] * 900 + [1] * 100
    w = balanced_weights(targets, 2)
    batches = epoch_batches(1000, 50, seed=0, epoch=0, weights=w)
    drawn = Counter(targets[i] for i in _flat(batches))
    assert sum(drawn.values()) == 1000 and 400 < drawn[1] < 600
    assert batches == epoch_batches(1000, 50, seed=0, epoch=0, weights=w)


def test_bad_arguments():
    with pytest.raises(ValueError):
        epoch_batches(10, 0, 0, 0)
    with pytest.raises(ValueError):
        epoch_batches(10, 2, 0, 0, lengths=[1, 2])
    with pytest.raises(ValueError):
        epoch_batches(3, 2, 0, 0, weights=[0, 0, 0])


def test_bucketing_puts_the_largest_batch_first():
    # The step that needs the most memory runs first (an OOM shows at step 1; the allocator's pool
    # is sized once). The rest of the order stays random and every row still appears once.
    lengths = list(np.random.default_rng(3).integers(5, 300, 3000))
    for epoch in range(3):
        batches = epoch_batches(3000, 32, seed=0, epoch=epoch, lengths=lengths)
        padded = [max(lengths[i] for i in b) * len(b) for b in batches]
        assert padded[0] == max(padded)
        assert sorted(_flat(batches)) == list(range(3000))
    assert epoch_batches(0, 4, seed=0, epoch=0, lengths=[]) == []
