"""`distributed.strategy: fsdp`: FSDP2 (`torch.distributed.fsdp.fully_shard`) behind fit()'s `parallel`.

Every rank holds 1/W of each parameter, of its gradient and of its optimizer state (DTensors sharded on
dim 0); a block's whole parameters exist only while it runs (all-gathered in forward and again in
backward, gradients reduce-scattered after). torch does the sharding and the collectives; this module
only decides what to shard and keeps tunewright's whole-tensor world working around it:

- What is sharded: every repeated block (the HF model's `_no_split_modules` classes, else the members
  of every ModuleList of 2+ entries), each its own unit, then the root (embeddings, head). The model is
  sharded after the warm start, the feature cache and a resume load, which all run on the whole model
  as under DDP; the optimizer's parameters and state are then moved onto the shards (`shard`).
  Peak memory therefore still holds one whole model per rank while it loads: this is not meta-device
  initialisation.
- Gradients: FSDP2 divides the reduce-scatter by W, as DDP divides its all-reduce, so fit()'s loss
  weights (distributed/parallel.py) make the result the global batch's mean gradient here too.
  Accumulation: `set_requires_gradient_sync(False)` off the boundary (FSDP2's no_sync). What trains may
  change after sharding (gradual unfreezing): FSDP2 reduces whatever has a gradient at each backward.
- Evaluation (`evaluating`): every block is all-gathered once and kept whole while the evaluation runs,
  so ranks may run different numbers of batches (sharded evaluation) without meeting in a collective.
- Writing (`gathered`): the model and optimizer are gathered to whole tensors on rank 0 into a CPU
  twin of the model made before sharding, and the usual writers (save_run_model, save_checkpoint) run
  on the twin. A checkpoint written under FSDP therefore has the same format as any other, and resumes
  under any world size and strategy with the same global batch.
- Restoring the best weights at the end: rank 0 loads them into the twin, and torch's
  `set_model_state_dict(..., broadcast_from_rank0=True)` puts them into every rank's shards.
"""
from __future__ import annotations

import contextlib
import copy
import sys
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..errors import ConfigError
from .parallel import DataParallel


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule
    return any(isinstance(m, FSDPModule) for m in model.modules())


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The blocks each sharded on their own, outermost first (a unit inside a unit would be gathered twice)."""
    block_classes = {name for m in model.modules() for name in (getattr(m, "_no_split_modules", None) or ())}
    found = [m for m in model.modules() if type(m).__name__ in block_classes]
    if not found:
        found = [child for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) >= 2
                 for child in m if any(True for _ in child.parameters())]
    inside: set[int] = set()
    units = []
    for m in found:
        if id(m) in inside:
            continue
        units.append(m)
        inside.update(id(sub) for sub in m.modules())
    return units


def refuse_unsupported(cfg, data_model: nn.Module, model: nn.Module) -> None:
    """What FSDP and tunewright do not do together here, said before any sharding."""
    if data_model is not model:
        raise ConfigError("distributed.strategy: fsdp with a feature cache: only the head trains over cached "
                          "features, so there is nothing large to shard; use distributed.strategy: ddp.")
    if cfg.train.precision == "fp16":
        raise ConfigError("distributed.strategy: fsdp with train.precision: fp16 is not supported (its gradient "
                          "scaler does not handle sharded gradients here); use bf16 or fp32.")


class ShardedParallel(DataParallel):
    """fit()'s `parallel` with FSDP2; the numbers (loss weights, sums) are DataParallel's."""

    shards = True

    def __init__(self, world, units, device: torch.device):
        super().__init__(world, units, device, probe=None)
        self.twin: nn.Module | None = None     # rank 0: the model's structure on the meta device, for writers

    def shard(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Shard `model` in place and move `optimizer` (its groups and any loaded state) onto the shards."""
        from torch.distributed.fsdp import fully_shard

        if self.rank == 0:
            self.twin = copy.deepcopy(model).to("meta")
        whole = dict(model.named_parameters())
        units = shard_units(model)
        kinds = ", ".join(sorted({type(u).__name__ for u in units})) or "none"   # before fully_shard renames them
        for unit in units:
            fully_shard(unit)
        fully_shard(model)
        move_optimizer(optimizer, whole, dict(model.named_parameters()))
        self.wraps += 1
        held = sum(p.to_local().numel() for p in model.parameters())
        total = sum(p.numel() for p in model.parameters())
        if self.rank == 0:
            print(f"fsdp: {len(units)} blocks ({kinds}) "
                  f"and the root sharded over {self.world} ranks; rank 0 holds {held:,} of {total:,} parameter "
                  f"values ({held / max(total, 1):.0%})", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def replica(self, model: nn.Module, sync: bool) -> Iterator[nn.Module]:
        model.set_requires_gradient_sync(sync)   # FSDP2's no_sync: gradients stay local off the boundary
        try:
            yield model
        finally:
            model.set_requires_gradient_sync(True)

    def clip_grad_norm(self, params: list, max_norm: float) -> torch.Tensor:
        """torch's clip on sharded gradients: the squares of each rank's slices summed in float64, then over
        the ranks in one all-reduce, so every rank scales by the same global coefficient. (torch's own
        clip_grad_norm_ on DTensors reduces inside its norm op; this keeps the step's collectives explicit.)"""
        grads = [p.grad.to_local() if hasattr(p.grad, "to_local") else p.grad for p in params if p.grad is not None]
        local = sum((g.detach().double().pow(2).sum() for g in grads), torch.zeros((), dtype=torch.float64))
        norm = self.all_sum(local).sqrt().float()
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)   # torch's formula, also for a non-finite norm
        for g in grads:
            g.detach().mul_(coef.to(g.device, g.dtype))
        return norm.to(self.device)

    @contextlib.contextmanager
    def gathered(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None):
        """Every rank enters; rank 0 gets (twin, optimizer view) with whole tensors on the CPU, the others
        (None, None). Collective: call it on every rank at the same point."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        opt_state = whole_optimizer_state(optimizer) if optimizer is not None else None
        if self.rank != 0:
            yield None, None
            return
        twin = self.twin
        # Each tensor its own storage: the gathered ones can be views into one buffer, which safetensors refuses.
        twin.load_state_dict({k: v.detach().clone() for k, v in state.items()}, assign=True)
        trains = {n: p.requires_grad for n, p in model.named_parameters()}
        for n, p in twin.named_parameters():
            p.requires_grad_(trains[n])
        try:
            yield twin, (StateView(opt_state) if opt_state is not None else None)
        finally:
            twin.to("meta")                      # frees the whole copy until the next write

    def restore(self, model: nn.Module, load: Callable[[nn.Module], Any]) -> Any:
        """`load(twin)` on rank 0 (e.g. read the best weights from disk), then the twin's weights into
        every rank's shards. Returns rank 0's result on every rank."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
        from .collective import on_rank0

        with self.gathered(model) as (twin, _):
            result = on_rank0(lambda: load(twin))
            state = twin.state_dict() if twin is not None else {}
            set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True,
                                                                        broadcast_from_rank0=True))
        return result

    @contextlib.contextmanager
    def evaluating(self, model: nn.Module) -> Iterator[None]:
        """Whole blocks on every rank while the body runs; no collective inside it."""
        from torch.distributed.fsdp import FSDPModule

        units = [m for m in model.modules() if isinstance(m, FSDPModule)]
        for m in units:
            m.unshard()
            m.set_reshard_after_forward(False)
        try:
            yield
        finally:
            for m in units:
                m.reshard()
                m.set_reshard_after_forward(True)


class StateView:
    """What save_checkpoint reads of an optimizer (`state_dict()`), holding whole tensors."""

    def __init__(self, state: dict):
        self._state = state

    def state_dict(self) -> dict:
        return self._state


def whole_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """`optimizer.state_dict()` with every sharded tensor gathered whole (a collective per tensor, in the
    same order on every rank). Keys and layout are those of an unsharded optimizer's."""
    from torch.distributed.tensor import DTensor

    sd = optimizer.state_dict()
    state = {}
    for idx in sorted(sd["state"]):
        state[idx] = {k: (v.full_tensor().cpu() if isinstance(v, DTensor) else v)
                      for k, v in sorted(sd["state"][idx].items())}
    return {"state": state, "param_groups": sd["param_groups"]}


def move_optimizer(optimizer: torch.optim.Optimizer, whole: dict[str, nn.Parameter],
                   sharded: dict[str, nn.Parameter]) -> None:
    """Point `optimizer` at the sharded parameters (by name), and shard any state it already holds (a
    resumed run's moments: every rank read the same whole tensors, so each keeps its own slice)."""
    from torch.distributed.tensor import distribute_tensor

    name_of = {id(p): n for n, p in whole.items()}
    for group in optimizer.param_groups:
        group["params"] = [sharded[name_of[id(p)]] for p in group["params"]]
    moved = {}
    for p, s in list(optimizer.state.items()):
        new = sharded[name_of[id(p)]]
        moved[new] = {k: (distribute_tensor(v.to(new.device), new.device_mesh, new.placements, src_data_rank=None)
                          if torch.is_tensor(v) and v.shape == new.shape and v.dim() > 0 else v)
                      for k, v in s.items()}
    optimizer.state.clear()
    optimizer.state.update(moved)


class WholeModel:
    """The same calls for an unsharded run (one process, or DDP): no collective, rank 0 writes the model
    itself, and the best weights go to the other ranks by broadcast."""

    shards = False

    def __init__(self, rank: int = 0):
        self.rank = rank

    @contextlib.contextmanager
    def gathered(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None):
        yield (model, optimizer) if self.rank == 0 else (None, None)

    def restore(self, model: nn.Module, load: Callable[[nn.Module], Any]) -> Any:
        from .collective import broadcast_module, on_rank0
        result = on_rank0(lambda: load(model))
        broadcast_module(model)
        return result

    @contextlib.contextmanager
    def evaluating(self, model: nn.Module) -> Iterator[None]:
        yield
