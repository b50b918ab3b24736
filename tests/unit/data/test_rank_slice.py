"""rank_slice: each rank's rows of one global batch (data/batching.py)."""
import pytest

from tunewright.data import epoch_batches
from tunewright.data.batching import rank_slice


@pytest.mark.parametrize("n,world", [(16, 2), (15, 2), (7, 3), (2, 4), (1, 2), (0, 2), (9, 1)])
def test_slices_partition_the_batch_in_order_with_sizes_within_one(n, world):
    batch = list(range(100, 100 + n))
    parts = [rank_slice(batch, r, world) for r in range(world)]
    assert sum(parts, []) == batch                          # the union, in order: contiguous slices
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_bucketing_holds_across_ranks():
    # lengths sorted within a bucket: a global batch has similar lengths, and so has each rank's slice
    lengths = [i % 97 for i in range(400)]
    order = epoch_batches(400, 16, seed=3, epoch=0, lengths=lengths)
    for b in order:
        spread = max(lengths[i] for i in b) - min(lengths[i] for i in b)
        for r in range(2):
            s = rank_slice(b, r, 2)
            assert max(lengths[i] for i in s) - min(lengths[i] for i in s) <= spread


def test_a_bad_rank_is_refused():
    with pytest.raises(ValueError):
        rank_slice([1, 2], 2, 2)
