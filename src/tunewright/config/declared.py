"""Names that higher layers declare, so that a config is checked against them when it loads.

`method:` and `strategy:` take their allowed values from the peft and strategies registries, which
are built from each method's and strategy's own declaration. config sits below both packages and
must not import them (layer order: cli > run > {peft, strategies} > training > {models, data} >
config > errors). So the direction is reversed: when `tunewright.peft` / `tunewright.strategies`
are imported they hand their registry (the dict itself, so later additions count) to `declare()`,
and the schema field says which registry it takes its values from (`opt(..., declared="method")`).
`run.train` imports both before it loads its config (and `tunewright.run` imports strategies at
module level), so `tunewright train` with `method: lroa` fails at config load, before any data is
read. A Config loaded in a process that had not imported them yet is checked again by
`apply_method` / `plan_strategy`, with the same message (`check`). The other designs were worse:
moving the options dataclasses and names into config would keep a second hand list there, and a
check at the CLI alone would miss configs built in Python.

Besides the names, a registry's values may carry traits that a layer below peft/strategies needs
to ask about (`trait`): e.g. peft asks whether a strategy trains everything when it is given no
strategy Plan (loading a saved run).
"""
from __future__ import annotations

import difflib
from typing import Any, Mapping

from ..errors import ConfigError

_REGISTRIES: dict[str, Mapping[str, Any]] = {}


def declare(key: str, registry: Mapping[str, Any]) -> None:
    """Make `registry` (name -> declaration) the allowed values of config key `key`."""
    _REGISTRIES[key] = registry


def names(key: str) -> list[str] | None:
    """The allowed values of `key`, or None when the package that declares them is not imported."""
    registry = _REGISTRIES.get(key)
    return None if registry is None else list(registry)


def check(key: str, value: str) -> None:
    """A ConfigError naming the key, the value, the allowed values and the closest one."""
    allowed = names(key)
    if allowed is None or value in allowed:
        return
    close = difflib.get_close_matches(str(value), allowed, n=1)
    raise ConfigError(f"{key}: {value!r} is not known; choose one of {', '.join(allowed)}."
                      + (f" Did you mean {close[0]!r}?" if close else ""))


def trait(key: str, name: str, attribute: str, default: Any) -> Any:
    """`attribute` of `name`'s declaration under `key`, or `default` when it is not declared here."""
    return getattr(_REGISTRIES.get(key, {}).get(name), attribute, default)
