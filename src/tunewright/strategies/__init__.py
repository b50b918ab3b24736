"""Strategies choose which of the model's existing parameters train, and at what LR multiple.

`plan_strategy(model, cfg) -> Plan` is the one entry point the run uses. Each strategy is a plain
function `(model, cfg) -> Plan` in plans.py, built from the functions of one file per job:

    rules.py           freeze(model, rules): (regex, train | freeze | LR multiple), uncovered = error
    groups.py          layer groups bottom -> top with the head on top; GroupIndex (name -> group)
    discriminative.py  ULMFiT / layer-decay LR multiples per group
    unfreezing.py      unfreeze_top(model, index, k) + the GradualUnfreezing callback
    frozen_mode.py     eval_frozen(model) + the FrozenEval callback
    feature_cache.py   frozen features or a frozen prefix computed once; what fit() trains on them
    lp_ft.py           linear_probe(head, features, labels): the head warm start of LP-FT
    l2sp.py            l2sp_penalty(...) + the L2SP callback
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch


@dataclass
class FitData:
    """What `fit()` trains and what each split is evaluated with.

    By default `model` is the TaskModel and the datasets are the bundle's. A plan's `prepare` may
    swap in a cache (feature_cache.py): `model` is then a small module over cached tensors that
    shares the TaskModel's trainable modules, so the trained weights land in the TaskModel.
    """
    model: torch.nn.Module
    train: Any                                   # a Dataset of example dicts
    collate: Callable
    lengths: Optional[list[int]]                 # for length bucketing (None: no bucketing)
    evals: dict[str, tuple]                      # split -> (model, dataset or None, collate)
    cache_seconds: float = 0.0                   # time spent computing a cache, reported in the summary

    @classmethod
    def of(cls, model: torch.nn.Module, bundle) -> "FitData":
        return cls(model, bundle.train, bundle.collate, bundle.lengths.get("train"),
                   {s: (model, bundle.split(s), bundle.collate) for s in ("val", "test")})


@dataclass
class Plan:
    """What a strategy or method decided: LR multiplier per parameter name, and callbacks to add.

    - `group_of(name)`: the layer group of a parameter; when set, the optimizer gets one param
      group per layer group (named in logs as `lr/<group>` and drawn by `tunewright lr-plot`);
    - `prepare(data, cfg, device) -> FitData`: runs once the model is on its device and before
      `fit()`: the head warm start (LP-FT) and the feature cache live here.
    """
    lr_scale: dict[str, float] = field(default_factory=dict)
    callbacks: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group_of: Optional[Callable[[str], str]] = None
    prepare: Optional[Callable[[FitData, Any, torch.device], FitData]] = None
    bn_recalibrate_batches: int = 0   # > 0: before every evaluation, BatchNorm statistics from this many batches


from .plans import feature_extraction, full, gradual_unfreezing, lp_ft, partial  # noqa: E402  (they return Plan)

STRATEGIES: dict[str, Callable] = {
    "full": full,
    "feature_extraction": feature_extraction,
    "partial": partial,
    "gradual_unfreezing": gradual_unfreezing,
    "progressive_unfreezing": gradual_unfreezing,   # the same schedule; vision papers call it progressive
    "lp_ft": lp_ft,
}
# Strategies that let every existing parameter train (a PEFT method then decides alone what trains).
TRAINS_EVERYTHING = ("full", "gradual_unfreezing", "progressive_unfreezing", "lp_ft")


def plan_strategy(model: torch.nn.Module, cfg) -> Plan:
    """The strategy's own decisions (plans.py), then what every strategy shares (`plans.finish`)."""
    from .options import check_options
    from .plans import finish
    check_options(cfg)         # done at config load too; a Config built in code skips that
    return finish(STRATEGIES[cfg.strategy](model, cfg), model, cfg)
