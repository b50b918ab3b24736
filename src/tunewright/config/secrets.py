"""Secrets stay out of everything a run writes: config.yaml, the model's JSON, trackers' params, the report.

Two ways a secret can reach a config, and what happens to each:

- A reference, `${env:NAME}`, as the whole value of a string (for example
  `model.factory_kwargs: {api_token: "${env:MY_TOKEN}"}`). The Config keeps the reference itself; it is
  resolved from the environment only where the value is used (`resolve_env`, called just before a
  user factory runs). So every file and tracker sees `${env:MY_TOKEN}`, and a reloaded run (eval,
  predict, serve) reads the variable again. Use this for anything a saved run must rebuild.
- A literal value under a key that looks like a secret (its name holds `token`, `key`, `password`,
  `passwd` or `secret`). It is written as `<redacted>` wherever a config is dumped (`redact`), and the
  run prints a note that names the key. A run whose factory needs it cannot rebuild itself later;
  `resolve_env` then says so and names the key.

Any `scheme://user:password@host` in a string (a tracking URI, a model URL) loses its user part too.
`redact` is for trees a user writes (the config, a factory's kwargs), not for a model's own HF config,
whose `tokenizer_class` or `pad_token` are not secrets.
Environment variables are never copied into a config or a run folder by tunewright.
"""
from __future__ import annotations

import os
import re
from typing import Any

from ..errors import ConfigError

REDACTED = "<redacted>"
SECRET_NAME = re.compile(r"token|key|passw(or)?d|secret", re.IGNORECASE)   # anywhere in the name: api_token, hf_key
ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def looks_secret(key: str) -> bool:
    return bool(SECRET_NAME.search(str(key)))


def redact(tree: Any, key: str = "") -> Any:
    """A copy of `tree` (dicts, lists, scalars) with literal secrets replaced by `<redacted>`: string values
    under secret-looking keys (not `${env:...}` references), and the user part of URLs in any string."""
    if isinstance(tree, dict):
        return {k: redact(v, str(k)) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [redact(v, key) for v in tree]
    if isinstance(tree, str):
        if looks_secret(key) and tree and not ENV_REF.match(tree):
            return REDACTED
        return URL_USERINFO.sub(r"\g<scheme><redacted>@", tree)
    return tree


def secret_keys(tree: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose literal values `redact` hides (for the run's note)."""
    out: list[str] = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += secret_keys(v, f"{prefix}{k}.")
    elif isinstance(tree, str) and tree and looks_secret(prefix.rstrip(".").rsplit(".", 1)[-1]) \
            and not ENV_REF.match(tree):
        out.append(prefix.rstrip("."))
    return out


def resolve_env(tree: Any, key: str) -> Any:
    """`tree` with every `${env:NAME}` replaced by the variable's value, at the point of use. An unset
    variable, or a value that was redacted when the run was saved, is a ConfigError naming the key."""
    if isinstance(tree, dict):
        return {k: resolve_env(v, f"{key}.{k}") for k, v in tree.items()}
    if isinstance(tree, list):
        return [resolve_env(v, f"{key}[{i}]") for i, v in enumerate(tree)]
    if isinstance(tree, str):
        m = ENV_REF.match(tree)
        if m:
            if m.group(1) not in os.environ:
                raise ConfigError(f"{key}: {tree} names the environment variable {m.group(1)}, which is not set.")
            return os.environ[m.group(1)]
        if tree == REDACTED:
            raise ConfigError(f"{key} was a secret written literally in the config, so the run did not save it. "
                              f"Give it as \"${{env:NAME}}\" and set NAME in the environment, so that saved runs "
                              f"can read it again.")
    return tree
