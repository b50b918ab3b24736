"""The contract between what chooses the trainable parameters and the loop that trains them.

A strategy (strategies/) and a PEFT method (peft/) each return a `Plan`; `run.py` hands the plans'
LR multiples to the optimizer, their callbacks to `fit()`, and lets each `prepare` swap the `FitData`
that `fit()` trains on. Both types live here, below strategies and peft, because those two are
siblings in the layer order (cli > run > {peft, strategies} > training > ...) and neither may import
the other: what one must tell the other travels in the Plan (e.g. `chose_parameters`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

import torch


@dataclass
class FitData:
    """What `fit()` trains and what each split is evaluated with.

    By default `model` is the TaskModel and the datasets are the bundle's. A plan's `prepare` may
    swap in a cache (strategies/feature_cache.py): `model` is then a small module over cached tensors
    that shares the TaskModel's trainable modules, so the trained weights land in the TaskModel.
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


class Unfreezing(Protocol):
    """A schedule that changes what trains during the run (strategies/unfreezing.py). Declared on the
    Plan so that tools which never run `fit()` (lr-find, lr-plot) can ask it instead of probing callbacks."""

    def start(self) -> None:
        """Make the model train what it trains at step 0."""

    def unfreeze_epochs(self) -> dict[str, Optional[int]]:
        """layer group -> the epoch it starts training (None: decided on a plateau, or never)."""


@dataclass
class Plan:
    """What a strategy or method decided: LR multiplier per parameter name, and callbacks to add.

    - `group_of(name)`: the layer group of a parameter; when set, the optimizer gets one param
      group per layer group (named in logs as `lr/<group>` and drawn by `tunewright lr-plot`);
    - `prepare(data, cfg, device) -> FitData`: runs once the model is on its device and before
      `fit()`: the head warm start (LP-FT) and the feature cache live here;
    - `chose_parameters`: a strategy's answer to "did you choose which existing parameters train?"
      True (partial, feature_extraction): a PEFT method applied after it keeps that choice and adds
      its own parameters. False (full, lp_ft, gradual unfreezing: everything may train): the method
      decides alone and freezes the base.
    """
    lr_scale: dict[str, float] = field(default_factory=dict)
    callbacks: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group_of: Optional[Callable[[str], str]] = None
    prepare: Optional[Callable[[FitData, Any, torch.device], FitData]] = None
    bn_recalibrate_batches: int = 0   # > 0: before every evaluation, BatchNorm statistics from this many batches
    chose_parameters: bool = False
    unfreezing: Optional[Unfreezing] = None       # also among `callbacks`, where fit() drives it
