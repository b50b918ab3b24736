"""Several ranks training one model: what `fit()` asks of them (training/parallel.py), with DDP.

Exactness. Rank r holds u_r of the global micro-batch's U loss units (rows; tokens for a causal LM;
summed class weights under a weighted loss) and computes its mean loss L_r = sum_r / u_r. DDP
averages gradients over the W ranks, so each rank's loss is weighted by w_r = W u_r / U:

    (1/W) sum_r grad(w_r L_r) = sum_r grad(sum_r) / U = grad of the global batch's mean loss,

also for an unequal last batch or unequal token counts. U costs one scalar all-reduce per micro-batch.

What trains. DDP builds its reducer over the parameters that require grad when it wraps; a
`requires_grad` flipped afterwards (gradual unfreezing) would not be all-reduced and the ranks would
drift apart silently (Lightning #20340). `replica()` therefore compares the trainable set on every
call and wraps again when it changed. Frozen parameters are never in the reducer (PEFT: the adapter
and head only), and trainable parameters the forward never reaches (a pooler under mean pooling) are
found once per wrap by walking the autograd graph of one probe forward and told to DDP as ignored, so
no step pays for `find_unused_parameters=True` (peft #951, #393).
"""
from __future__ import annotations

import contextlib
import gc
from typing import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import TrainingError
from .env import World


def reached_parameters(loss: torch.Tensor) -> set[int]:
    """ids of the leaf tensors the autograd graph of `loss` accumulates gradient into (no backward is run)."""
    seen, found, stack = set(), set(), [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)        # AccumulateGrad nodes hold the parameter
        if var is not None:
            found.add(id(var))
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return found


def unused_trainable(model: nn.Module, probe: Callable[[nn.Module], torch.Tensor]) -> list[str]:
    """Names of trainable parameters that `probe(model)` (a loss) does not depend on. The RNG is left as it
    was, so the probe changes no dropout mask of the run."""
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        reached = reached_parameters(probe(model))
    return [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in reached]


class DataParallel:
    """`fit()`'s `parallel` on `world.world` ranks (see the module docstring)."""

    def __init__(self, world: World, units: Callable[[dict], torch.Tensor], device: torch.device,
                 probe: Callable[[nn.Module], torch.Tensor] | None = None):
        self.rank, self.world = world.rank, world.world
        self.units, self.device, self.probe = units, device, probe
        self._wrapper: nn.Module | None = None
        self._key: tuple | None = None
        self.wraps = 0                 # how many times the model was (re-)wrapped: tests read it
        self.ignored: list[str] = []

    # ---- the model --------------------------------------------------------------------------------

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _wrap(self, model: nn.Module) -> nn.Module:
        trainable = tuple(n for n, p in model.named_parameters() if p.requires_grad)
        key = (id(model), trainable)
        if key == self._key:
            return self._wrapper
        if self._wrapper is not None:
            if any(p.grad is not None for p in model.parameters()):
                raise TrainingError("what trains changed in the middle of a gradient accumulation; unfreeze only "
                                    "between optimizer steps")
            self._wrapper._remove_autograd_hooks()   # the old reducer must not all-reduce any more
            self._wrapper = None
            gc.collect()
        for t in [*model.parameters(), *model.buffers()]:
            if hasattr(t, "_ddp_ignored"):
                del t._ddp_ignored
        frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
        self.ignored = unused_trainable(model, self.probe) if self.probe is not None else []
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen + self.ignored)
        self._wrapper = nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self._key = key
        self.wraps += 1
        return self._wrapper

    @contextlib.contextmanager
    def replica(self, model: nn.Module, sync: bool) -> Iterator[nn.Module]:
        net = self._wrap(model)
        if sync:
            yield net
        else:
            with net.no_sync():          # forward AND backward: DDP decides in forward whether to reduce
                yield net

    def seed_micro_batch(self, seed: int, epoch: int, index: int) -> None:
        # Each rank draws its own dropout masks, as a pure function of where it is in training, so a resumed
        # or restarted run draws the same ones (the checkpoint holds rank 0's generator only).
        torch.manual_seed(int(np.random.SeedSequence([seed, epoch, index, self.rank]).generate_state(1)[0]))

    # ---- the numbers ------------------------------------------------------------------------------

    def loss_weight(self, batch: dict, real: bool) -> torch.Tensor:
        mine = self.units(batch).to(self._comm_device(), torch.float64) * (1.0 if real else 0.0)
        total = mine.clone()
        dist.all_reduce(total)
        return (self.world * mine / total.clamp_min(1e-12)).to(self.device, torch.float32)

    def all_sum(self, x) -> torch.Tensor:
        t = torch.as_tensor(x, dtype=torch.float64).to(self._comm_device()).clone()
        dist.all_reduce(t)
        return t

    def all_true(self, flag) -> bool:
        t = torch.as_tensor(flag).to(self._comm_device(), torch.int32).reshape(1)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def clip_grad_norm(self, params: list, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)   # every rank holds the whole averaged gradients
