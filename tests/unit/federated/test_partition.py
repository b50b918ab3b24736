import numpy as np
import pytest

from tunewright.errors import ConfigError
from tunewright.federated.partition import label_histogram, local_split, partition, skew

LABELS = np.random.default_rng(0).integers(0, 8, 600)


@pytest.mark.parametrize("name", ["iid", "dirichlet", "shards"])
def test_every_row_exactly_once_and_seeded(name):
    parts = partition(LABELS, 10, name, seed=3, alpha=0.5)
    rows = np.concatenate(parts)
    assert len(rows) == len(LABELS) and len(np.unique(rows)) == len(LABELS)
    again = partition(LABELS, 10, name, seed=3, alpha=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = partition(LABELS, 10, name, seed=4, alpha=0.5)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))


def test_dirichlet_skews_as_alpha_drops():
    def s(alpha):
        return np.mean([skew([label_histogram(LABELS, p, 8) for p in partition(LABELS, 10, "dirichlet", seed=k,
                                                                              alpha=alpha)]) for k in range(3)])
    assert s(10.0) < s(0.5) < s(0.1)


def test_shards_give_few_labels_per_client():
    parts = partition(LABELS, 10, "shards", seed=0, shards_per_client=2)
    labels_per_client = [int((np.bincount(LABELS[p], minlength=8) > 0).sum()) for p in parts]
    assert max(labels_per_client) <= 4                      # two label-sorted shards span at most a few labels
    iid = [int((np.bincount(LABELS[p], minlength=8) > 0).sum()) for p in partition(LABELS, 10, "iid", seed=0)]
    assert min(iid) == 8


def test_errors_name_the_key():
    with pytest.raises(ConfigError, match="federated.num_clients"):
        partition(LABELS[:5], 10)
    with pytest.raises(ConfigError, match="federated.partitioner"):
        partition(LABELS, 4, "zipf")


def test_local_split_is_disjoint():
    tr, te = local_split(np.arange(50), 0.2, 1)
    assert len(te) == 10 and not set(tr) & set(te) and len(tr) + len(te) == 50
