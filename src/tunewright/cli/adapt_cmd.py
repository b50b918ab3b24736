"""tunewright adapt RUN_DIR --shots K [--data NAME_OR_FILE] [--classes A,B,...] [--episodes N]: adapt a
meta-trained run to new N-way K-shot task(s) and print the query accuracy."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("adapt", help="Adapt a meta-trained run to a new few-shot task (docs/beyond.md).")
    p.add_argument("run_dir", help="A folder written by `tunewright meta-train`.")
    p.add_argument("--shots", type=int, required=True, help="Labeled examples per class (K).")
    p.add_argument("--data", default=None, help="A packaged dataset (images or text) or a text/label file (CSV, "
                                                "TSV, JSONL) of the run's kind; default: the run's meta.dataset. "
                                                "Text is encoded with the run's frozen backbone.")
    p.add_argument("--classes", default=None, help="Comma-separated classes to draw the task from: ids, or the "
                                                     "label names of text (default: the run's meta-test classes, "
                                                     "or every class of --data).")
    p.add_argument("--episodes", type=int, default=1, help="Tasks to sample; >1 reports mean and 95%% CI.")
    p.add_argument("--steps", type=int, default=None, help="Inner SGD steps (default: meta.test_inner_steps).")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..meta.driver import adapt_run

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    out = adapt_run(args.run_dir, args.shots, args.data, classes, args.episodes, args.steps,
                    cache_dir=Path(args.run_dir).parent / "feature_cache")
    print(json.dumps(out, indent=2))
    return 0
