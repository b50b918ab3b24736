"""YAML + dotted overrides -> typed `Config`, with errors that name the key, the value and what is allowed.

YAML is read with `yaml.safe_load` only. Overrides look like `train.lr=3e-4` or `tracking=[tensorboard]`;
their values are parsed as YAML scalars so `true`, `1e-3` and `null` mean what they look like.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from ..errors import ConfigError
from . import declared
from .schema import TRACKERS, Config


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(cls)}


def _unwrap_optional(tp) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _suggest(key: str, allowed, prefix: str = "") -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
    return f" Did you mean {prefix + close[0]!r}?" if close else ""


def _coerce(value: Any, tp, key: str, f: dataclasses.Field):
    """Check `value` against the annotation `tp`; ints are accepted for floats (YAML `1` for `1.0`)."""
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional or base is Any:   # Any: a field that validate() checks (e.g. auto | number | null)
            return None
        raise ConfigError(f"{key}: null is not allowed; expected {getattr(base, '__name__', base)}.")
    if dataclasses.is_dataclass(base):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {base.__name__} options, got {value!r}.")
        return _build(base, value, prefix=key + ".")
    origin = typing.get_origin(base) or base
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        list: lambda v: isinstance(v, list),
        dict: lambda v: isinstance(v, dict),
    }.get(origin)
    if ok is not None and not ok(value):
        if origin is list and isinstance(value, str):  # `tracking=tensorboard` means a one-item list
            value = [value]
        elif origin is float and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}.") from None
        else:
            raise ConfigError(f"{key}: expected {origin.__name__}, got {type(value).__name__} {value!r}.")
    if origin is float:
        value = float(value)
    choices = f.metadata.get("choices")
    if choices is not None and not isinstance(value, list) and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(str, choices))}."
                          + _suggest(str(value), choices))
    if "declared" in f.metadata:
        declared.check(key, value)       # method, strategy: the values their packages declare
    return value


def _build(cls, data: dict, prefix: str = ""):
    fields = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"Unknown config key {prefix + key!r}.{_suggest(key, fields, prefix)} "
                              f"Allowed under {prefix.rstrip('.') or 'the top level'}: {', '.join(fields)}.")
        tp, f = fields[key]
        kwargs[key] = _coerce(value, tp, prefix + key, f)
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"Override {dotted!r}: {p!r} is not a section.")
        node = nxt
    node[parts[-1]] = value


def parse_overrides(overrides: list[str] | None) -> dict:
    tree: dict = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} must look like key.sub=value.")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_from_dict(data: dict | None, overrides: list[str] | None = None) -> Config:
    """Build a validated Config from a plain dict (YAML contents) plus dotted overrides."""
    data = _merge(data or {}, parse_overrides(overrides))
    cfg = _build(Config, data)
    validate(cfg)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **kwargs) -> Config:
    """Read a YAML recipe (safe_load), apply `key.sub=value` overrides, then keyword sections."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file {str(p)!r} does not exist.")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of config keys.")
    return config_from_dict(_merge(data, kwargs), overrides)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def validate(cfg: Config) -> None:
    """Cross-field checks that a single field's type cannot express."""
    t = cfg.train
    for key, value, lo in [("train.batch_size", t.batch_size, 1), ("train.grad_accum", t.grad_accum, 1),
                           ("train.epochs", t.epochs, 1), ("checkpoint.keep_last", cfg.checkpoint.keep_last, 1),
                           ("data.max_length", cfg.data.max_length, 1), ("data.max_bad_rows", cfg.data.max_bad_rows, 0),
                           ("train.malloc_trim_every", t.malloc_trim_every or 0, 0),
                           ("data.pad_to_multiple_of", cfg.data.pad_to_multiple_of, 1)]:
        if value < lo:
            raise ConfigError(f"{key}: {value!r} is not allowed; it must be >= {lo}.")
    ad = cfg.model.attention_dropout
    if not (ad in ("auto", None) or (isinstance(ad, (int, float)) and not isinstance(ad, bool) and 0 <= ad < 1)):
        raise ConfigError(f"model.attention_dropout: {ad!r} is not allowed; use auto, null or a number in [0, 1).")
    if t.lr <= 0:
        raise ConfigError(f"train.lr: {t.lr!r} is not allowed; it must be > 0.")
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"train.warmup_ratio: {t.warmup_ratio!r} must be in [0, 1).")
    for key in ("val_fraction", "test_fraction"):
        v = getattr(cfg.data, key)
        if not 0 < v < 1:
            raise ConfigError(f"data.{key}: {v!r} must be in (0, 1).")
    for name in cfg.tracking:
        if name not in TRACKERS:
            raise ConfigError(f"tracking: {name!r} is not a tracker; choose from {', '.join(TRACKERS)}."
                              + _suggest(name, TRACKERS))
    # Strategy, schedule and augmentation options: the modules that use them hold their rules, and
    # they sit above config; `tunewright.run.as_config` runs them (run.check_options), before any data is read.


def describe_schema(cls=Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) rows for `tunewright config`."""
    rows = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        base, _ = _unwrap_optional(tp)
        if dataclasses.is_dataclass(base):
            rows += describe_schema(base, prefix + f.name + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_ = f.metadata.get("help", "")
        choices = f.metadata.get("choices") or (declared.names(f.metadata["declared"]) if "declared" in f.metadata
                                                else None)
        if choices:
            help_ += f" [{' | '.join(map(str, choices))}]"
        rows.append((prefix + f.name, repr(default), help_))
    return rows
