"""Parameter-efficient methods: each adds parameters to the model (issue 4 adds them here).

`apply_method(model, cfg) -> Plan` is the one entry point; `none` leaves the model as it is.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import ConfigError
from ..strategies import Plan


def none(model: torch.nn.Module, cfg) -> Plan:
    return Plan()


METHODS: dict[str, Callable] = {"none": none}


def apply_method(model: torch.nn.Module, cfg) -> Plan:
    fn = METHODS.get(cfg.method)
    if fn is None:
        import difflib
        close = difflib.get_close_matches(cfg.method, list(METHODS), n=1)
        raise ConfigError(f"method: {cfg.method!r} is not known; choose one of {', '.join(METHODS)}."
                          + (f" Did you mean {close[0]!r}?" if close else ""))
    return fn(model, cfg)
