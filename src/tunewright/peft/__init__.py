"""Parameter-efficient methods: each adds parameters to the model (docs/peft.md).

`apply_method(model, cfg) -> Plan` is the one entry point; `none` leaves the model as it is.
Each method is one module here with `apply(model, cfg) -> Plan` (see base.py for the contract
and the adapter lifecycle: save, load, several adapters, merge, drift report):

    lora            lora.py      peft on Hugging Face models, own layers on any other nn.Module
    adalora         adalora.py   peft + the budget callback
    prompt_tuning   prompt.py    peft
    prefix_tuning   prompt.py    peft
    ia3             ia3.py       peft
    adapter         adapter.py   own bottleneck layers (Houlsby / Pfeiffer)
    bitfit          bitfit.py    biases only
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Optional

import torch

from ..errors import ConfigError
from ..strategies import Plan
from .base import (adapters, active_adapter, can_merge, format_report, load_adapter, merge, merge_report,
                   merged_model, restore_saved, set_adapter, unmerge)


def none(model: torch.nn.Module, cfg) -> Plan:
    return Plan()


def _lazy(module: str, fn: str = "apply") -> Callable:
    def call(model, cfg):
        return getattr(importlib.import_module(f"{__name__}.{module}"), fn)(model, cfg)
    call.module = module  # type: ignore[attr-defined]
    return call


METHODS: dict[str, Callable] = {
    "none": none,
    "lora": _lazy("lora"),
    "adalora": _lazy("adalora"),
    "prompt_tuning": _lazy("prompt", "apply_prompt"),
    "prefix_tuning": _lazy("prompt", "apply_prefix"),
    "adapter": _lazy("adapter"),
    "bitfit": _lazy("bitfit"),
    "ia3": _lazy("ia3"),
}


def apply_method(model: torch.nn.Module, cfg, strategy_plan: Optional[Plan] = None) -> Plan:
    """Add the method's parameters and choose what trains. Wrapping renames parameters
    (`x.weight` -> `x.base_layer.weight`); `strategy_plan`'s per-name LR multiples follow them."""
    fn = METHODS.get(cfg.method)
    if fn is None:
        import difflib
        close = difflib.get_close_matches(cfg.method, list(METHODS), n=1)
        raise ConfigError(f"method: {cfg.method!r} is not known; choose one of {', '.join(METHODS)}."
                          + (f" Did you mean {close[0]!r}?" if close else ""))
    if fn is none:
        return fn(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    plan = fn(model, cfg)
    if strategy_plan is not None and strategy_plan.lr_scale:
        from .base import remap_names
        remap_names(strategy_plan, names, model)
    return plan


def method_module(method: str):
    fn = METHODS[method]
    return importlib.import_module(f"{__name__}.{fn.module}")  # type: ignore[attr-defined]


def save_options(model, cfg) -> dict:
    """How `save_run_model` saves this run: PEFT runs write the adapter and head only, plus the full
    state dict when the base cannot be rebuilt from a pretrained source (a user factory's own init)."""
    if cfg.method == "none":
        return {}
    return {"adapter": lambda out: save_run_adapter(model, out, cfg), "full": model.source.get("type") == "factory"}


def checkpoint_state(model, cfg):
    """What a PEFT run's checkpoints hold: the tensors that can change (trainable parameters and buffers),
    not the frozen base, which resume rebuilds from its pretrained source. None (everything) for
    method none, and for user factories, whose base is whatever their code builds."""
    if cfg.method == "none" or model.source.get("type") == "factory":
        return None

    def state(m) -> dict:
        full = m.state_dict(keep_vars=True)
        params = {id(p) for p in m.parameters()}
        return {k: v.detach() for k, v in full.items() if v.requires_grad or id(v) not in params}
    return state


def save_run_adapter(model, model_dir, cfg) -> dict:
    """Save the run's adapter and head into `model_dir` (see base.save_adapter); returns the meta entry."""
    from .base import save_adapter
    mod = method_module(cfg.method)
    name = cfg.peft.adapter_name
    options = mod.saved_options(model, cfg) if hasattr(mod, "saved_options") else None
    return save_adapter(model, model_dir, cfg.method, name, mod.MODULE, options, mod.own_pattern(name))


def load_run_adapter(model, model_dir: Path, meta: dict) -> None:
    """`load_run_model`'s hook for runs that saved only an adapter: put it (and its head) on the base."""
    load_adapter(model, Path(model_dir), activate=True)


__all__ = ["METHODS", "apply_method", "adapters", "active_adapter", "can_merge", "format_report", "load_adapter",
           "merge", "merge_report", "merged_model", "restore_saved", "set_adapter", "unmerge", "save_run_adapter",
           "load_run_adapter", "save_options", "checkpoint_state"]
