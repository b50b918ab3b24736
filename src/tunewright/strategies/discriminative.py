"""Discriminative (layer-wise) learning rates: lower layers hold more general features, so they
move less. Each form gives an LR multiple per layer group; `d` counts groups below the head
(head d = 0, the group under it d = 1, ...):

- ULMFiT (Howard & Ruder 2018, sec. 3.2):  lr_d = lr / 2.6^d        (`ulmfit`, factor 2.6)
- layer-wise LR decay, LLRD (BEiT, Bao et al. 2022; timm's `layer_decay`):
                                            lr_d = lr * decay^d      (`decay`, e.g. 0.75)
- explicit multiples by rule (`strategies/rules.py`): a number in a rule multiplies that
  parameter's LR, on top of either form above.

These are pure functions of the group order; `optim.param_groups` turns the per-name multiple
into optimizer param groups (one per group, scale and decay, so no parameter is in two groups).
"""
from __future__ import annotations

from typing import Callable, Mapping

from ..errors import ConfigError
from .groups import GroupIndex


def group_scales(order: list[str], mode: str, *, ulmfit_factor: float = 2.6,
                 layer_decay: float = 0.75) -> dict[str, float]:
    """LR multiple of every group in `order` (bottom -> top, head last)."""
    top = len(order) - 1
    if mode == "none":
        return {g: 1.0 for g in order}
    if mode == "ulmfit":
        if not ulmfit_factor >= 1:
            raise ConfigError(f"strategy_options.ulmfit_factor: {ulmfit_factor!r} is not allowed; it must be >= 1.")
        return {g: ulmfit_factor ** -(top - i) for i, g in enumerate(order)}
    if mode == "decay":
        if not 0 < layer_decay <= 1:
            raise ConfigError(f"strategy_options.layer_decay: {layer_decay!r} is not allowed; it must be in (0, 1].")
        return {g: layer_decay ** (top - i) for i, g in enumerate(order)}
    raise ConfigError(f"strategy_options.layer_lr: {mode!r} is not allowed; choose none, ulmfit or decay.")


def lr_scale_fn(index: GroupIndex, per_group: Mapping[str, float],
                per_name: Mapping[str, float] | None = None) -> Callable[[str], float]:
    """name -> group multiple x rule multiple. Names added later (adapters) use their group's multiple."""
    per_name = per_name or {}
    return lambda name: per_group.get(index(name), 1.0) * per_name.get(name, 1.0)
