"""The order of one epoch as a pure function of (seed, epoch), plus sampler weights.

Being pure is what makes exact resume possible: a resumed run recomputes the same batch list
and skips the batches it already did, with no sampler state to save.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

BUCKET_BATCHES = 50   # a bucket holds this many batches' worth of rows


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int,
                  lengths: Optional[Sequence[int]] = None,
                  weights: Optional[Sequence[float]] = None,
                  shuffle: bool = True) -> list[list[int]]:
    """Row indices of each batch of one epoch, in order. Deterministic in its arguments.

    - ``shuffle=False``: 0..n-1 in order, cut into batches (evaluation);
    - else a permutation from ``np.random.default_rng([seed, epoch])``, each row once;
    - ``weights``: instead, n draws WITH replacement, row i with probability w_i / sum(w)
      (``imbalance: sample``: weights 1 / count(class) give balanced batches on average);
    - ``lengths``: length bucketing. Take the shuffled order in chunks of
      ``BUCKET_BATCHES * batch_size`` rows, sort each chunk by length, cut it into batches,
      then shuffle the batches. Rows in a batch have similar lengths, so dynamic padding adds
      little, while the chunking keeps randomness across the epoch (the "bucket iterator" of
      torchtext / fairseq). Only the last batch of the epoch can be short. The batch with the
      most padded positions then goes first: the step that needs the most memory runs at step 1,
      so an out-of-memory error shows at once and not hours into a run. (It does not bound CPU
      peak RSS: glibc's heap still fragments under changing shapes, see benchmarks/README.md.)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if lengths is not None and len(lengths) != n:
        raise ValueError(f"lengths has {len(lengths)} entries for n={n} rows")
    if not shuffle:
        return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    rng = np.random.default_rng([seed, epoch])
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if len(w) != n or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("weights must be n finite, non-negative numbers, not all zero")
        order = rng.choice(n, size=n, replace=True, p=w / w.sum())
    else:
        order = rng.permutation(n)
    if lengths is None:
        return [order[i:i + batch_size].tolist() for i in range(0, n, batch_size)]
    lens = np.asarray(lengths)
    chunk = BUCKET_BATCHES * batch_size                     # a multiple of batch_size
    batches = []
    for start in range(0, n, chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lens[part], kind="stable")]  # shortest first within the chunk
        batches += [part[i:i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    perm = rng.permutation(len(batches))
    batches = [batches[i] for i in perm]
    if not batches:
        return batches
    largest = max(range(len(batches)), key=lambda i: max(lens[batches[i]]) * len(batches[i]))
    return [batches[largest]] + batches[:largest] + batches[largest + 1:]


def rank_slice(batch: Sequence[int], rank: int, world: int) -> list[int]:
    """This rank's rows of one global batch: `world` contiguous slices whose sizes differ by at most one.

    Contiguous, so length bucketing holds across ranks (a global batch's rows have similar lengths and
    each rank's slice keeps that); the union over ranks is the batch, so `world` processes see exactly
    the rows one process sees. A batch shorter than `world` leaves some ranks an empty slice.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    n = len(batch)
    start = rank * (n // world) + min(rank, n % world)
    return list(batch[start:start + n // world + (rank < n % world)])


def balanced_weights(targets: Sequence[int], num_labels: int) -> list[float]:
    """Per-row weight 1 / count(row's class): each class is drawn equally often on average."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_labels)
    return [1.0 / counts[t] for t in targets]


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of padded positions when each batch pads to its longest row (0: none)."""
    real = padded = 0
    for b in batches:
        lens = [lengths[i] for i in b]
        real += sum(lens)
        padded += max(lens) * len(lens)
    return 1.0 - real / padded if padded else 0.0
