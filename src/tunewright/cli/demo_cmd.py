"""tunewright demo: the main job (configs/demo.yaml): MiniLM fine-tuned on Reuters-R8, then a results table."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="Run the main job: MiniLM on Reuters-R8, then print the results table.")
    p.add_argument("--config", default="configs/demo.yaml", help="Recipe to run (default: configs/demo.yaml).")
    p.add_argument("overrides", nargs="*", help="Dotted overrides.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..run import train
    from .show import print_summary

    if not Path(args.config).is_file():
        raise ConfigError(f"{args.config} not found; run `tunewright demo` from the repository root "
                          f"or pass --config PATH.")
    result = train(args.config, args.overrides, overwrite=True)
    print_summary(result.summary, result.run_dir)
    return 0
