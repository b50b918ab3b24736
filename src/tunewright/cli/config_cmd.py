"""tunewright config: print every config key with its default and help."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="Print the config schema with defaults and help.")
    p.add_argument("--yaml", action="store_true", help="Print the defaults as a YAML recipe instead.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import Config, describe_schema, dump_yaml

    if args.yaml:
        print(dump_yaml(Config()), end="")
        return 0
    rows = describe_schema()
    width = max(len(k) for k, _, _ in rows)
    for key, default, help_ in rows:
        print(f"{key:<{width}}  = {default:<14} {help_}")
    return 0
