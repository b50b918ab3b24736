"""tunewright eval RUN_DIR [--data SPEC] [--split test]"""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="Evaluate a finished run's best model.")
    p.add_argument("run_dir", help="A run folder (runs/<run_name>).")
    p.add_argument("--data", help="A CSV/TSV/JSONL file, image folder or packaged dataset (default: the run's own).")
    p.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="Which split of the run's data, or of a packaged --data, to use.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..run import evaluate_run
    from .show import print_table

    metrics = evaluate_run(args.run_dir, args.data, args.split)
    out = Path(args.run_dir) / "eval.json"
    out.write_text(json.dumps({"data": args.data or "(run's own)", "split": args.split, **metrics}, indent=2))
    print_table(f"eval: {args.run_dir} on {args.data or 'its own data'} [{args.split}]",
                [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in metrics.items()])
    print(f"written: {out}")
    return 0
