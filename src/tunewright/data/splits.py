"""Seeded, stratified splits and subsets (sklearn ``train_test_split(stratify=...)``).

Stratifying keeps class proportions equal across splits, which matters for imbalanced sets
such as reuters-r52 (its smallest class has one training row). sklearn refuses to stratify when
a class has a single row, so such rows always stay on the kept side (a class seen only in val
could not be learned, and a class never seen in training is an error downstream). When even
that fails (e.g. fewer held-out rows than classes) the split falls back to unstratified and the
returned note says so; the fallback still moves back any held row whose class would otherwise
vanish from the kept side.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Optional, Sequence

import numpy as np


def train_test_split(*args, **kwargs):
    """sklearn's, imported on first use: importing sklearn (and scipy under it) costs ~4 s of every process's
    start on this CPU, and serve, predict, export and bench-infer read data without ever splitting it."""
    from sklearn.model_selection import train_test_split as split
    return split(*args, **kwargs)


def _split(labels: Optional[Sequence[Hashable]], n: int, n_held: int,
           seed: int) -> tuple[list[int], list[int], Optional[str]]:
    """Indices (keep, held) with len(held) == n_held (fewer only when the fallback moves rows
    back), both sorted; and a note when stratification was not possible."""
    idx = list(range(n))
    if n_held <= 0:
        return idx, [], None
    if n_held >= n:
        raise ValueError(f"cannot hold out {n_held} of {n} rows")
    if labels is None:
        keep, held = train_test_split(idx, test_size=n_held, random_state=seed)
        return sorted(keep), sorted(held), None
    counts = Counter(labels)
    rare = [i for i in idx if counts[labels[i]] < 2]
    rest = [i for i in idx if counts[labels[i]] >= 2]
    note = None
    if rare:
        note = (f"{len(rare)} row(s) of {sum(c < 2 for c in counts.values())} class(es) with a "
                "single row stay on the kept side")
    try:
        keep, held = train_test_split(rest, test_size=n_held, random_state=seed,
                                      stratify=[labels[i] for i in rest])
        return sorted(keep + rare), sorted(held), note
    except ValueError as e:
        keep, held = train_test_split(idx, test_size=n_held, random_state=seed)
        kept_classes = {labels[i] for i in keep}
        back = set()
        for i in held:                       # one row per vanished class is enough
            if labels[i] not in kept_classes:
                kept_classes.add(labels[i])
                back.add(i)
        keep, held = keep + sorted(back), [i for i in held if i not in back]
        note = f"unstratified split (stratifying failed: {e})"
        return sorted(keep), sorted(held), note


def split_indices(n: int, labels: Optional[Sequence[Hashable]], fraction: float,
                  seed: int) -> tuple[list[int], list[int], Optional[str]]:
    """Hold out ``ceil(fraction * n)`` of ``n`` rows, stratified by ``labels`` (None: not).

    Returns sorted (keep, held) indices and a note, None when the split went as asked.
    """
    return _split(labels, n, math.ceil(fraction * n), seed)


def subset_indices(n: int, labels: Optional[Sequence[Hashable]], size: Optional[int],
                   seed: int) -> tuple[list[int], Optional[str]]:
    """A seeded stratified subset of ``size`` of the ``n`` rows (all of them if size is None or >= n).

    Implemented as "drop n - size rows, stratified", so single-row classes stay in the subset. The one
    subset function: `data.train_subset` and the drivers' per-task and test subsets all draw with it.
    """
    if size is None or size >= n:
        return list(range(n)), None
    keep, _, note = _split(labels, n, n - size, seed)
    return keep, note
