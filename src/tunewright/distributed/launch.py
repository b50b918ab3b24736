"""`tunewright train CONFIG --nproc-per-node N [--nnodes M ...]`: start the workers through torchrun.

tunewright writes no launcher and no rendezvous of its own: this module builds torchrun's command line
and runs `python -m torch.distributed.run ... -m tunewright train CONFIG ...` as a child process, which
is exactly what a user (or a SLURM / Kubernetes spec, docs/scale.md) may type instead. What it adds:

- the world size it asked for (TUNEWRIGHT_WORLD_SIZE), so a worker that finds fewer peers stops;
- OMP_NUM_THREADS = this node's cores split among its workers (torchrun would set 1), printed;
- `--max-restarts K`: torchrun restarts the whole group when a worker dies; the restarted workers see
  TORCHELASTIC_RESTART_COUNT > 0 and resume from the newest valid checkpoint by themselves (run.py).
  TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 is set with it (see `launch`).
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from ..errors import ConfigError
from .env import EXPECTED, cores, thread_split


@dataclass
class LaunchSpec:
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_backend: str = "c10d"
    rdzv_id: str = "tunewright"
    max_restarts: int = 0

    @property
    def world(self) -> int:
        return self.nproc_per_node * self.nnodes

    def wants_workers(self) -> bool:
        """Whether torchrun must start the workers (several processes, or elastic restarts of one)."""
        return self.world > 1 or self.max_restarts > 0


def check(spec: LaunchSpec, env=os.environ) -> None:
    if spec.nproc_per_node < 1 or spec.nnodes < 1:
        raise ConfigError(f"--nproc-per-node {spec.nproc_per_node} --nnodes {spec.nnodes}: both must be >= 1")
    if spec.max_restarts < 0:
        raise ConfigError(f"--max-restarts {spec.max_restarts}: must be >= 0")
    if spec.nnodes > 1 and not spec.rdzv_endpoint:
        raise ConfigError(f"--nnodes {spec.nnodes} needs --rdzv-endpoint HOST:PORT (the address every node can "
                          f"reach; with c10d the node whose address it is hosts the rendezvous)")
    if spec.rdzv_backend == "static" and spec.nnodes > 1 and spec.node_rank is None:
        raise ConfigError("--rdzv-backend static needs --node-rank R on every node (0 on the endpoint's node)")
    if "RANK" in env and "WORLD_SIZE" in env:
        raise ConfigError("this process is already a torchrun worker (RANK and WORLD_SIZE are set): run "
                          "`tunewright train CONFIG` under torchrun without --nproc-per-node/--nnodes")


def torchrun_args(spec: LaunchSpec) -> list[str]:
    """torchrun's own flags for `spec` (what follows `python -m torch.distributed.run`)."""
    args = ["--nnodes", str(spec.nnodes), "--nproc-per-node", str(spec.nproc_per_node),
            "--max-restarts", str(spec.max_restarts)]
    if spec.nnodes > 1 or spec.rdzv_endpoint:
        args += ["--rdzv-backend", spec.rdzv_backend, "--rdzv-endpoint", spec.rdzv_endpoint,
                 "--rdzv-id", spec.rdzv_id]
        if spec.rdzv_backend == "static":
            args += ["--node-rank", str(spec.node_rank or 0)]
    return args


def command(spec: LaunchSpec, worker_args: list[str]) -> list[str]:
    """The whole command: `python -m torch.distributed.run <flags> -m tunewright <worker_args>`."""
    return [sys.executable, "-m", "torch.distributed.run", *torchrun_args(spec), "-m", "tunewright", *worker_args]


def launch(spec: LaunchSpec, worker_args: list[str], env=None) -> int:
    """Start the workers through torchrun and wait for them; returns torchrun's exit status."""
    env = dict(os.environ if env is None else env)
    check(spec, env)
    env[EXPECTED] = str(spec.world)
    if spec.max_restarts:
        # torchrun shares its rendezvous TCPStore with the workers by default; after a restart the new workers
        # can read the killed generation's addresses from it and hang in init_process_group (seen here with
        # gloo on torch 2.13; pytorch#135712). A fresh store per attempt avoids it.
        env.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    n = cores()
    threads = thread_split(n, spec.nproc_per_node)
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(threads)
        why = f"{n} cores / {spec.nproc_per_node} workers"
    else:
        threads, why = int(env["OMP_NUM_THREADS"]), "OMP_NUM_THREADS was set"
    if spec.nproc_per_node > n:
        print(f"warning: {spec.nproc_per_node} workers on {n} cores: they will share cores and run slower",
              file=sys.stderr, flush=True)
    if spec.rdzv_backend == "c10d" and spec.node_rank is not None:
        print("note: --node-rank is not used by the c10d rendezvous, which numbers the nodes itself (rank 0 "
              "may run on any node: keep output_dir on a shared filesystem)", file=sys.stderr, flush=True)
    cmd = command(spec, worker_args)
    print(f"launching {spec.nproc_per_node} worker(s) on this node x {spec.nnodes} node(s) = world size "
          f"{spec.world}; {threads} thread(s) per worker ({why}); "
          f"max restarts {spec.max_restarts}\n  {' '.join(cmd)}", file=sys.stderr, flush=True)
    return subprocess.run(cmd, env=env).returncode
