"""tunewright compare CONFIG.yaml [--methods full,lora,...] [key.sub=value ...]"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="Train several strategies/methods on the same data and seed; "
                       "write leaderboard.csv and report.html.")
    p.add_argument("config", help="YAML recipe; its `compare:` list gives the variants unless --methods does.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides applied to every variant.")
    p.add_argument("--methods", help="Comma-separated strategy or method names, e.g. full,feature_extraction,lora.")
    p.add_argument("--out", help="Output folder (default: <output_dir>/<run_name>-compare).")
    p.add_argument("--no-report", action="store_true", help="Skip report.html.")
    p.add_argument("--resume", action="store_true", help="Keep variants that already finished (summary.json).")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..compare import run_compare

    methods = [m for m in args.methods.split(",") if m.strip()] if args.methods else None
    from ..compare import leaderboard_cells
    from ..report.runs import read_leaderboard
    from .show import print_columns

    compare_dir = run_compare(args.config, args.overrides, methods, args.out, report=not args.no_report,
                              resume=args.resume)
    headers, cells = leaderboard_cells(read_leaderboard(compare_dir / "leaderboard.csv"))
    print_columns("tunewright compare", headers, cells, right=[h != "variant" for h in headers])
    if (compare_dir / "mlflow.db").exists():
        print(f"mlflow store: mlflow ui --backend-store-uri sqlite:///{(compare_dir / 'mlflow.db').resolve()}")
    return 0
