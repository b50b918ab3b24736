"""Parameter-efficient methods: each adds parameters to the model (docs/peft.md).

`apply_method(model, cfg, strategy_plan) -> Plan` is the one entry point; `none` leaves the model as it is.
Each method is one module here that declares a `Method` (method.py: its name, `apply`, its parameter
pattern, its traits and hooks); `registry.py` finds the declarations and builds `METHODS`, the names
`method:` allows in a config, and the adapter-parameter pattern from them. base.py holds the shared
contract and the adapter lifecycle (save, load, several adapters, merge, drift report):

    lora            lora.py      peft on Hugging Face models, own layers on any other nn.Module
    adalora         adalora.py   peft + the budget callback
    prompt_tuning   prompt.py    peft
    prefix_tuning   prompt.py    peft
    ia3             ia3.py       peft
    adapter         adapter.py   own bottleneck layers (Houlsby / Pfeiffer)
    bitfit          bitfit.py    biases only

peft and strategies are siblings and neither imports the other: what a method must know about the
strategy (did it choose the parameters that train?) comes in the strategy's Plan (training/plan.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ..training.plan import Plan
from .base import (adapters, active_adapter, can_merge, format_report, load_adapter, merge, merge_report,
                   merged_model, restore_saved, set_adapter, unmerge)
from .method import Method
from .registry import METHODS, method_spec


def apply_method(model: torch.nn.Module, cfg, strategy_plan: Optional[Plan] = None) -> Plan:
    """Add the method's parameters and choose what trains. Wrapping renames parameters
    (`x.weight` -> `x.base_layer.weight`); `strategy_plan`'s per-name LR multiples follow them.

    The method keeps the existing parameters the strategy chose (`strategy_plan.chose_parameters`);
    after a strategy that lets everything train it decides alone, so the base is frozen first. Without a
    plan (rebuilding a saved run) the strategy's declaration answers the same question."""
    method = method_spec(cfg.method)
    if not method.freezes_base:
        return method.apply(model, cfg)
    if strategy_plan is not None:
        chose = strategy_plan.chose_parameters
    else:
        from ..config import declared
        chose = not declared.trait("strategy", cfg.strategy, "trains_everything", True)
    if not chose:
        for p in model.parameters():
            p.requires_grad_(False)
    names = {id(p): n for n, p in model.named_parameters()}
    plan = method.apply(model, cfg)
    if strategy_plan is not None and strategy_plan.lr_scale:
        from .base import remap_names
        remap_names(strategy_plan, names, model)
    return plan


def save_options(model, cfg) -> dict:
    """How `save_run_model` saves this run: PEFT runs write the adapter and head only, plus the full
    state dict when the base cannot be rebuilt from a pretrained source (a user factory's own init)."""
    if not method_spec(cfg.method).freezes_base:
        return {}
    return {"adapter": lambda out: save_run_adapter(model, out, cfg), "full": model.source.get("type") == "factory"}


def checkpoint_state(model, cfg):
    """What a PEFT run's checkpoints hold: the tensors that can change (trainable parameters and buffers),
    not the frozen base, which resume rebuilds from its pretrained source. None (everything) for
    method none, and for user factories, whose base is whatever their code builds."""
    if not method_spec(cfg.method).freezes_base or model.source.get("type") == "factory":
        return None

    def state(m) -> dict:
        full = m.state_dict(keep_vars=True)
        params = {id(p) for p in m.parameters()}
        return {k: v.detach() for k, v in full.items() if v.requires_grad or id(v) not in params}
    return state


def save_run_adapter(model, model_dir, cfg) -> dict:
    """Save the run's adapter and head into `model_dir` (see base.save_adapter); returns the meta entry."""
    from .base import save_adapter
    method = method_spec(cfg.method)
    name = cfg.peft.adapter_name
    options = method.saved_options(model, cfg) if method.saved_options is not None else None
    return save_adapter(model, model_dir, method.name, name, method.module, options, method.own_pattern(name))


def load_run_adapter(model, model_dir: Path, meta: dict) -> None:
    """`load_run_model`'s hook for runs that saved only an adapter: put it (and its head) on the base."""
    load_adapter(model, Path(model_dir), activate=True)


__all__ = ["METHODS", "Method", "method_spec", "apply_method", "adapters", "active_adapter", "can_merge",
           "format_report", "load_adapter", "merge", "merge_report", "merged_model", "restore_saved", "set_adapter", "unmerge", "save_run_adapter",
           "load_run_adapter", "save_options", "checkpoint_state"]
