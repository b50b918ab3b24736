"""tunewright train CONFIG.yaml [key.sub=value ...] [--resume] [--overwrite]"""
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
    from ..run import train
    from .show import print_summary

    try:
        result = train(args.config, args.overrides, resume=args.resume, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"\ninterrupted; {resume_hint(args)}", file=sys.stderr, flush=True)
        raise SystemExit(130)  # 128 + SIGINT, as a shell reports it
    print_summary(result.summary, result.run_dir)
    return 0
