"""tunewright config [GROUP]: every config key (or one group's) with its default and help, by group."""
from __future__ import annotations

import sys
import textwrap

TOP = "top"              # the group of the keys without a dot (run_name, task, method, ...)
PLAIN_WIDTH = 100        # help text wraps here when the output is not a terminal


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="Print the config schema with defaults and help, one group or all.")
    p.add_argument("group", nargs="?", help="A group such as train, lora or data (or a key prefix such as train.lr); "
                   "default: every group.")
    p.add_argument("--yaml", action="store_true", help="Print the defaults as a YAML recipe instead.")
    p.set_defaults(func=run)


def group_of(key: str) -> str:
    return key.split(".")[0] if "." in key else TOP


def groups(rows) -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(group_of(row[0]), []).append(row)
    return out


def select(rows, name: str | None) -> dict[str, list]:
    """The groups to print: all, one group, or the keys under a dotted prefix."""
    from ..errors import ConfigError

    by_group = groups(rows)
    if not name:
        return by_group
    if name in by_group:
        return {name: by_group[name]}
    hits = [r for r in rows if r[0] == name or r[0].startswith(name.rstrip(".") + ".")]
    if hits:
        return groups(hits)
    raise ConfigError(f"config: {name!r} is no group or key; the groups are {', '.join(by_group)}.")


def render(selected: dict[str, list], width: int) -> list[str]:
    lines = []
    for name, rows in selected.items():
        lines += [f"[{name}]  {len(rows)} key{'s' if len(rows) != 1 else ''}"]
        for key, default, help_ in rows:
            lines.append(f"  {key} = {default}")
            lines += textwrap.wrap(help_, width, initial_indent="      ", subsequent_indent="      ",
                                   break_long_words=False, break_on_hyphens=False)
        lines.append("")
    return lines


def run(args) -> int:
    from ..config import Config, describe_schema, dump_yaml
    from .show import is_terminal, terminal_width

    if args.yaml:
        print(dump_yaml(Config()), end="")
        return 0
    rows = describe_schema()
    selected = select(rows, args.group)
    width = terminal_width() if is_terminal(sys.stdout) else PLAIN_WIDTH
    lines = render(selected, max(width, 40))
    if not args.group:
        lines += textwrap.wrap(f"{len(rows)} keys in {len(selected)} groups; `tunewright config GROUP` prints one "
                               f"({', '.join(selected)}).", max(width, 40))
    print("\n".join(lines))
    return 0
