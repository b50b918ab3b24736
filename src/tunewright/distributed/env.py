"""Where this process stands among the workers torchrun started, and the process group over them.

torchrun (torch.distributed.run) starts every worker with RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR/MASTER_PORT and TORCHELASTIC_RESTART_COUNT in its environment; a
process without them is one process on its own. `tunewright train --nproc-per-node N` adds
TUNEWRIGHT_WORLD_SIZE (the N x nnodes it asked for), so a worker that finds fewer peers stops
instead of training alone (what `accelerate launch --cpu --num_processes 2` does silently, #2741).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

import torch

from ..errors import ConfigError, TunewrightError

EXPECTED = "TUNEWRIGHT_WORLD_SIZE"   # set by tunewright's launcher: the world size the user asked for


class DistributedError(TunewrightError):
    """The processes are not what was asked for, or cannot reach each other."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    restarts: int = 0          # torchrun's TORCHELASTIC_RESTART_COUNT: > 0 after an elastic restart
    launched: bool = False     # started by torchrun (its variables are set)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env(env: Mapping[str, str] = os.environ) -> World:
    """The World torchrun's variables describe; one process when they are absent."""
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return World()
    world = int(env["WORLD_SIZE"])
    return World(rank=int(env["RANK"]), world=world, local_rank=int(env.get("LOCAL_RANK", 0)),
                 local_world=int(env.get("LOCAL_WORLD_SIZE", world)),
                 restarts=int(env.get("TORCHELASTIC_RESTART_COUNT", 0)), launched=True)


def check_expected(w: World, env: Mapping[str, str] = os.environ) -> None:
    """Stop when fewer (or more) workers exist than `--nproc-per-node x --nnodes` asked for."""
    asked = env.get(EXPECTED)
    if asked is not None and int(asked) != w.world:
        raise DistributedError(f"{asked} processes were asked for (--nproc-per-node x --nnodes), but this worker "
                               f"is one of {w.world} (WORLD_SIZE={w.world}); stopping rather than training with "
                               f"fewer. Check the launcher and that every node joined the rendezvous.")


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, which a cgroup or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:            # macOS, Windows
        return os.cpu_count() or 1


def thread_split(n_cores: int, local_world: int) -> int:
    """torch threads per worker when `local_world` workers share `n_cores`: an equal split, at least 1."""
    return max(1, n_cores // max(local_world, 1))


def worker_threads(w: World, num_threads: int | None, env: Mapping[str, str] = os.environ) -> tuple[int, str]:
    """(torch threads for this worker, why). `train.num_threads` wins; else OMP_NUM_THREADS when the user set
    it; else the node's cores split among its workers. torchrun sets OMP_NUM_THREADS=1 for every worker when
    it was unset: that 1 is replaced by the split (tunewright's own launcher sets the split itself)."""
    split = thread_split(cores(), w.local_world)
    if num_threads:
        return num_threads, "train.num_threads"
    omp = env.get("OMP_NUM_THREADS")
    if omp and omp.isdigit() and not (omp == "1" and w.local_world > 1):
        return int(omp), "OMP_NUM_THREADS"
    return split, f"{cores()} cores / {w.local_world} workers on this node"


def backend_for(name: str, device: torch.device) -> str:
    """`distributed.backend` as a torch backend: auto is nccl on CUDA, gloo otherwise."""
    if name == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if name == "nccl" and device.type != "cuda":
        raise ConfigError(f"distributed.backend: 'nccl' needs CUDA devices, but this run's device is {device.type}; "
                          f"use gloo (or auto).")
    return name


def start(cfg, device_name: str = "auto") -> World:
    """Join the process group torchrun set up (once per process), pin the worker's device and threads, and
    return its World. One process on its own: nothing is done and `World()` comes back."""
    import torch.distributed as dist
    from ..training.precision import resolve_device

    w = from_env()
    if not w.launched:
        return w
    check_expected(w)
    if w.world == 1 and EXPECTED not in os.environ:
        return w                                   # `torchrun --nproc-per-node 1`: one process, nothing to join
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed; it cannot run several processes")
    device = resolve_device(device_name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", w.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    threads, why = worker_threads(w, cfg.train.num_threads)
    torch.set_num_threads(threads)
    if not dist.is_initialized():
        backend = backend_for(cfg.distributed.backend, device)
        dist.init_process_group(backend, timeout=timedelta(minutes=cfg.distributed.timeout_minutes),
                                **({"device_id": device} if backend == "nccl" else {}))
    if dist.get_world_size() != w.world:
        raise DistributedError(f"the process group has {dist.get_world_size()} ranks, WORLD_SIZE says {w.world}")
    # Every rank counts itself in: a collective that only completes when all `world` ranks are there.
    here = torch.ones(1, device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(here)
    if int(here.item()) != w.world:
        raise DistributedError(f"{int(here.item())} of {w.world} ranks answered")
    if w.local_rank == 0:
        print(f"distributed: rank {w.rank} of {w.world} ({w.local_world} on this node), backend "
              f"{dist.get_backend()}, strategy {cfg.distributed.strategy}, {threads} torch thread(s) per worker "
              f"({why})" + (f", restart {w.restarts}" if w.restarts else ""), file=sys.stderr, flush=True)
    return w


def stop() -> None:
    """Leave the process group (the end of a run started by torchrun)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
