"""Strategies choose which of the model's existing parameters train, and at what LR multiple.

`plan_strategy(model, cfg) -> Plan` is the one entry point the run uses. The foundation ships
`full`; issue 3 adds feature extraction, partial, gradual unfreezing, LP-FT and discriminative LRs
here, each as a plain function plus (where it changes over time) a thin callback.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..errors import ConfigError


@dataclass
class Plan:
    """What a strategy or method decided: LR multiplier per parameter name, and callbacks to add."""
    lr_scale: dict[str, float] = field(default_factory=dict)
    callbacks: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def full(model: torch.nn.Module, cfg) -> Plan:
    for p in model.parameters():
        p.requires_grad_(True)
    return Plan()


STRATEGIES: dict[str, Callable] = {"full": full}


def plan_strategy(model: torch.nn.Module, cfg) -> Plan:
    fn = STRATEGIES.get(cfg.strategy)
    if fn is None:
        import difflib
        close = difflib.get_close_matches(cfg.strategy, list(STRATEGIES), n=1)
        raise ConfigError(f"strategy: {cfg.strategy!r} is not known; choose one of {', '.join(STRATEGIES)}."
                          + (f" Did you mean {close[0]!r}?" if close else ""))
    return fn(model, cfg)
