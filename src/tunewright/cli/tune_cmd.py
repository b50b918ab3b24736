"""tunewright tune CONFIG.yaml --trials N [key.sub=value ...]"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("tune", help="Optuna search (TPE, median pruning) over the config's search_space; "
                       "resumable SQLite study, best config written to <run_name>-tune/.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="Dotted overrides applied to every trial.")
    p.add_argument("--trials", type=int, default=10, help="Trials to run now (a resumed study adds these).")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..tune import tune
    print(tune(args.config, args.overrides, args.trials))
    return 0
