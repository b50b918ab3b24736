"""Pure functions of multi-task training.

Task sampling, for task sizes n_i:
- proportional: p_i = n_i / sum_j n_j;
- temperature:  p_i = n_i^(1/T) / sum_j n_j^(1/T) (Arivazhagan et al. 2019; T = 1 is proportional,
  T -> inf is uniform);
- round_robin:  tasks in turn, 0, 1, ..., T-1, 0, ...
Loss weighting:
- fixed: L = sum_i w_i L_i;
- uncertainty (Kendall, Gal & Cipolla 2018, "Multi-Task Learning Using Uncertainty to Weigh Losses"):
  L = sum_i exp(-s_i) L_i + s_i with s_i = log sigma_i^2 learned (their classification form
  1/sigma^2 L + log sigma, written with s for numerical stability and without the factor 1/2).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def task_probabilities(sizes: Sequence[int], sampling: str, temperature: float = 2.0) -> np.ndarray:
    n = np.asarray(sizes, float)
    if sampling == "proportional":
        p = n
    elif sampling == "temperature":
        p = n ** (1.0 / temperature)
    elif sampling == "round_robin":
        p = np.ones_like(n)
    else:
        raise ValueError(f"multitask.sampling: {sampling!r} is not one of proportional, temperature, round_robin")
    return p / p.sum()


def task_schedule(sizes: Sequence[int], n_batches: int, sampling: str, temperature: float = 2.0,
                  seed: int = 0, epoch: int = 0) -> list[int]:
    """The task of each of `n_batches` batches; a pure function of (seed, epoch)."""
    if sampling == "round_robin":
        return [i % len(sizes) for i in range(n_batches)]
    rng = np.random.default_rng([seed, epoch])
    return rng.choice(len(sizes), size=n_batches, p=task_probabilities(sizes, sampling, temperature)).tolist()


def multitask_batches(offsets: Sequence[int], sizes: Sequence[int], sampling: str, temperature: float):
    """An `epoch_batches` for `fit()` over the tasks' concatenated examples: each batch is drawn from one
    task (chosen by `task_schedule`), walking through that task's own shuffled order, cycling."""

    def epoch_batches(n, batch_size, seed, epoch, **_):
        n_batches = -(-n // batch_size)                      # fit() counts ceil(n / batch_size) batches
        rng = np.random.default_rng([seed, epoch, 1])
        orders = [rng.permutation(s) for s in sizes]
        pos = [0] * len(sizes)
        out = []
        for t in task_schedule(sizes, n_batches, sampling, temperature, seed, epoch):
            if pos[t] + batch_size > sizes[t]:
                orders[t], pos[t] = rng.permutation(sizes[t]), 0
            idx = orders[t][pos[t]:pos[t] + batch_size]
            pos[t] += batch_size
            out.append([int(offsets[t] + i) for i in idx])
        return out

    return epoch_batches


def uncertainty_weighted(losses: torch.Tensor, log_vars: torch.Tensor) -> torch.Tensor:
    """sum_i exp(-s_i) L_i + s_i; losses and log_vars (T,)."""
    return (torch.exp(-log_vars) * losses + log_vars).sum()
