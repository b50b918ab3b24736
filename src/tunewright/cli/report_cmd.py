"""tunewright report RUN_DIR|COMPARE_DIR [--no-analysis] [--no-baselines]"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="Write a self-contained report.html for a run or compare folder.")
    p.add_argument("path", help="A run folder (summary.json) or a compare folder (leaderboard.csv).")
    p.add_argument("--no-analysis", action="store_true", help="Do not run `tunewright analyze` when analysis.json is missing.")
    p.add_argument("--no-baselines", action="store_true", help="Skip the majority-class and linear-probe baselines.")
    p.add_argument("--max-examples", type=int, default=256, help="Test examples an on-the-fly analysis uses.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report
    print(write_report(args.path, analyze=not args.no_analysis, baselines=not args.no_baselines,
                       max_examples=args.max_examples))
    return 0
