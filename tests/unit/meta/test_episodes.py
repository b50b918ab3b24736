import numpy as np
import pytest

from tunewright.meta import EpisodeSampler, split_classes


def test_meta_test_classes_never_appear_in_meta_training():
    labels = np.repeat(np.arange(10), 30)
    train_cls, test_cls = split_classes(range(10), [5, 6, 7, 8, 9])
    assert set(train_cls).isdisjoint(test_cls)
    sampler = EpisodeSampler(labels, train_cls, n_way=3, k_shot=2, q_queries=4, seed=0)
    for i in range(500):
        s, sy, q, qy, chosen = sampler.episode(i)
        seen = set(labels[s]) | set(labels[q])
        assert seen.isdisjoint(test_cls) and set(chosen) <= set(train_cls)
        assert len(set(s) | set(q)) == len(s) + len(q)           # support and query never share an example
        assert sorted(np.bincount(sy)) == [2, 2, 2] and sorted(np.bincount(qy)) == [4, 4, 4]
        assert all(labels[s][sy == k][0] == chosen[k] for k in range(3))
    assert sampler.episode(7)[0].tolist() == sampler.episode(7)[0].tolist()   # a pure function of (seed, i)


def test_unknown_test_class_and_small_pool_are_errors():
    with pytest.raises(ValueError, match="test_classes"):
        split_classes(range(5), [7])
    with pytest.raises(ValueError, match="n_way"):
        EpisodeSampler(np.arange(6), [0, 1], n_way=5, k_shot=1, q_queries=1)
