"""tunewright adapt RUN_DIR --shots K [--data NAME] [--classes 5,6,7,8,9] [--episodes N]: adapt a
meta-trained run to new N-way K-shot task(s) with a few SGD steps and print the query accuracy."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("adapt", help="Adapt a meta-trained run to a new few-shot task (docs/beyond.md).")
    p.add_argument("run_dir", help="A folder written by `tunewright meta-train`.")
    p.add_argument("--shots", type=int, required=True, help="Labeled examples per class (K).")
    p.add_argument("--data", default=None, help="Packaged image dataset (default: the run's meta.dataset).")
    p.add_argument("--classes", default=None, help="Comma-separated class ids to draw the task from "
                                                     "(default: the run's meta-test classes).")
    p.add_argument("--episodes", type=int, default=1, help="Tasks to sample; >1 reports mean and 95%% CI.")
    p.add_argument("--steps", type=int, default=None, help="Inner SGD steps (default: meta.test_inner_steps).")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..meta.driver import adapt_run

    classes = [int(c) for c in args.classes.split(",")] if args.classes else None
    out = adapt_run(args.run_dir, args.shots, args.data, classes, args.episodes, args.steps)
    print(json.dumps(out, indent=2))
    return 0
