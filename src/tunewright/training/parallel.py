"""What `fit()` asks of the processes it runs in: one process (`Single`, here) or several under torchrun
(`tunewright.distributed.DataParallel`, above this layer). The loop reads the same either way:

    rows  = rank_slice(order[i], par.rank, par.world)       # this rank's rows of the global batch
    with par.replica(model, sync=state.accum_boundary) as net:  # DDP: no_sync() off the boundary
        loss = loss_fn(net(batch), batch)
        (loss * par.loss_weight(batch, real) / grad_accum).backward()

`loss_weight` makes DDP's gradient (the mean over ranks) equal the gradient of the mean loss over the
whole global batch, also when ranks hold different numbers of rows or tokens.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Protocol

import torch


class Parallel(Protocol):
    rank: int
    world: int

    def replica(self, model: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        """The module to run this micro-batch through; gradients are reduced across ranks only when `sync`."""

    def seed_micro_batch(self, seed: int, epoch: int, index: int) -> None:
        """Seed this rank's random streams (dropout) for one micro-batch; a no-op in one process."""

    def loss_weight(self, batch: dict, real: bool) -> float | torch.Tensor:
        """The factor on this rank's mean loss so that DDP's mean of gradients is the global batch's mean."""

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        """x summed over ranks (every rank gets the sum)."""

    def all_true(self, flag: torch.Tensor) -> bool:
        """Whether `flag` holds on every rank (the step-skip decision must be the same everywhere)."""

    def clip_grad_norm(self, params: list, max_norm: float) -> torch.Tensor:
        """Clip the gradients of `params` to a global L2 norm of `max_norm`; returns the norm before."""


class Single:
    """One process: the model itself, weight 1, sums of one."""
    rank, world = 0, 1

    @contextlib.contextmanager
    def replica(self, model: torch.nn.Module, sync: bool) -> Iterator[torch.nn.Module]:
        yield model

    def seed_micro_batch(self, seed: int, epoch: int, index: int) -> None:
        pass

    def loss_weight(self, batch: dict, real: bool) -> float:
        return 1.0

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def all_true(self, flag: torch.Tensor) -> bool:
        return bool(flag)

    def clip_grad_norm(self, params: list, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
