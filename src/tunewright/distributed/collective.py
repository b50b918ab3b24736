"""The few collectives a run needs besides the gradient all-reduce, each a no-op in one process.

- `shared_map(fn, items)`: every item computed once in the whole world (rank r takes items r, r+W, ...),
  the results gathered to every rank in order: sharded evaluation, the feature cache, the LP-FT probe's
  features.
- `on_rank0(fn)`: only rank 0 runs `fn` (it writes files); its result, or its error, reaches every rank,
  so a refusal on rank 0 stops all ranks with the same message instead of leaving them at a barrier.
- `broadcast_module(model)`: rank 0's parameters and buffers to every rank (the best weights, which only
  rank 0 read back from disk).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

from ..errors import TunewrightError


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def share(items: Sequence) -> list:
    """The items `shared_map` hands this rank (all of them in one process): progress counts these."""
    if not active():
        return list(items)
    return list(items[dist.get_rank()::dist.get_world_size()])


def _gather(obj: Any) -> list:
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def shared_map(fn: Callable[[Any], Any], items: Sequence) -> list:
    """[fn(x) for x in items], each computed on one rank only and gathered to all (pickled; keep results CPU)."""
    if not active():
        return [fn(x) for x in items]
    r, w = dist.get_rank(), dist.get_world_size()
    mine = [fn(items[k]) for k in range(r, len(items), w)]
    per_rank = _gather(mine)
    return [per_rank[k % w][k // w] for k in range(len(items))]


def on_rank0(fn: Callable[[], Any]) -> Any:
    """fn() on rank 0 alone; every rank returns its result, or raises TunewrightError with rank 0's message."""
    if not active():
        return fn()
    box: list = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ("ok", fn())
        except TunewrightError as e:
            box[0] = ("error", type(e).__name__, str(e))
            dist.broadcast_object_list(box, src=0)
            raise
        except BaseException as e:  # a bug: the others stop too, rank 0 keeps its traceback
            box[0] = ("error", type(e).__name__, f"rank 0 failed: {type(e).__name__}: {e}")
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    if box[0][0] == "error":
        if dist.get_rank() == 0:
            return None  # unreachable: rank 0 raised above
        raise TunewrightError(box[0][2])
    return box[0][1]


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_module(model: torch.nn.Module) -> None:
    """Every parameter and buffer of `model` from rank 0 to all ranks (in place)."""
    if not active():
        return
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)
