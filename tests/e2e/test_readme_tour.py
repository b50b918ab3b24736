"""Every command in the README's "A short tour of the CLI" parses as written: the subcommand exists, its
flags are known, and a config it names loads with its dotted overrides (every key valid)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tunewright.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]


def tour_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## A short tour of the CLI", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.startswith("tunewright ")]


def test_the_tour_is_found():
    cmds = tour_commands()
    assert len(cmds) >= 20 and all(c.startswith("tunewright ") for c in cmds)


@pytest.mark.parametrize("command", tour_commands())
def test_each_tour_command_parses(command):
    argv = shlex.split(command)[1:]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = list(getattr(args, "overrides", None) or [])
    assert all("=" in e and not e.startswith("-") for e in extra), f"unknown arguments {extra} in: {command}"
    overrides += extra
    config = getattr(args, "config", None)
    if config and config.endswith((".yaml", ".yml")):
        from tunewright.run import as_config
        assert (REPO / config).is_file(), f"{config} does not exist (in: {command})"
        as_config(str(REPO / config), overrides)            # every key and value valid, names declared
