"""tunewright train CONFIG.yaml [key.sub=value ...] [--resume] [--overwrite]"""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="Fine-tune as a YAML recipe says; writes runs/<run_name>/.")
    p.add_argument("config", help="YAML recipe (read with yaml.safe_load).")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as train.lr=3e-4 data.train=x.csv")
    p.add_argument("--resume", action="store_true", help="Continue from the newest valid checkpoint.")
    p.add_argument("--overwrite", action="store_true", help="Delete an existing run folder of the same name first.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..run import train
    from .show import print_summary

    result = train(args.config, args.overrides, resume=args.resume, overwrite=args.overwrite)
    print_summary(result.summary, result.run_dir)
    return 0
