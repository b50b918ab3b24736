"""tunewright train CONFIG.yaml [key.sub=value ...] [--resume] [--overwrite] [--force]
                 [--nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] [--max-restarts K]]"""
from __future__ import annotations

import json
import shlex
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="Fine-tune as a YAML recipe says; writes runs/<run_name>/.")
    p.add_argument("config", help="YAML recipe (read with yaml.safe_load).")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as train.lr=3e-4 data.train=x.csv")
    p.add_argument("--resume", action="store_true", help="Continue from the newest valid checkpoint.")
    p.add_argument("--overwrite", action="store_true", help="Delete an existing run folder of the same name first.")
    p.add_argument("--force", action="store_true", help="--resume even when settings that change the training "
                   "differ from the checkpoint's (they are listed either way).")
    g = p.add_argument_group("several processes (torchrun does the launching; docs/scale.md)")
    g.add_argument("--nproc-per-node", type=int, default=1, help="Worker processes on this node (default 1).")
    g.add_argument("--nnodes", type=int, default=1, help="Nodes in the job (each runs this same command).")
    g.add_argument("--node-rank", type=int, default=None, help="This node's rank (used by --rdzv-backend static).")
    g.add_argument("--rdzv-endpoint", default=None, help="HOST:PORT every node can reach (multi-node).")
    g.add_argument("--rdzv-backend", default="c10d", choices=("c10d", "static"), help="torchrun's rendezvous.")
    g.add_argument("--rdzv-id", default="tunewright", help="Job id shared by the nodes of one job.")
    g.add_argument("--max-restarts", type=int, default=0, help="Restart the workers this many times when one "
                   "fails; they resume from the newest valid checkpoint.")
    p.set_defaults(func=run)


def resume_hint(args) -> str:
    """What to type to continue an interrupted run, and from which checkpoint."""
    from pathlib import Path

    from ..run import as_config
    from ..training.checkpoint import latest_valid

    cfg = as_config(args.config, args.overrides)
    ckpt = latest_valid(Path(cfg.output_dir) / cfg.run_name / "checkpoints")
    command = shlex.join(["tunewright", "train", str(args.config), *args.overrides, "--resume"])
    if ckpt is None:
        return f"no checkpoint was written yet; `{command}` starts over"
    step = json.loads((ckpt / "state.json").read_text())["step"]
    return f"continue from its checkpoint at step {step} with:\n  {command}"


def run(args) -> int:
    # Importing torch and the model's library takes seconds before anything else can be said.
    print(f"tunewright train {args.config}: starting ...", file=sys.stderr, flush=True)
    from ..distributed.env import from_env
    from ..distributed.launch import LaunchSpec, launch
    from ..run import train
    from .show import print_summary

    spec = LaunchSpec(args.nproc_per_node, args.nnodes, args.node_rank, args.rdzv_endpoint, args.rdzv_backend,
                      args.rdzv_id, args.max_restarts)
    if spec.wants_workers():
        flags = [f"--{k}" for k in ("resume", "overwrite", "force") if getattr(args, k)]
        return launch(spec, ["train", str(args.config), *args.overrides, *flags])
    try:
        result = train(args.config, args.overrides, resume=args.resume, overwrite=args.overwrite, force=args.force)
    except KeyboardInterrupt:
        print(f"\ninterrupted; {resume_hint(args)}", file=sys.stderr, flush=True)
        raise SystemExit(130)  # 128 + SIGINT, as a shell reports it
    if from_env().is_main:                   # under torchrun every rank has the summary; rank 0 shows it
        print_summary(result.summary, result.run_dir)
    return 0
