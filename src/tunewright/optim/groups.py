"""Optimizer parameter groups: which parameters decay, and at what learning rate each trains.

Biases and normalisation weights get no weight decay (decay on them only shrinks scale/shift
parameters toward zero for no regularisation benefit; BERT, timm and nanoGPT do the same).
A parameter is "no decay" when it is 1-D (biases, LayerNorm/BatchNorm weights) or its name says norm.
`lr_scale` maps parameter name -> LR multiplier (discriminative rates come in as such a map).
"""
from __future__ import annotations

import re
from typing import Callable

import torch

_NORM = re.compile(r"(^|\.)(norm|ln|layernorm|layer_norm|bn|batchnorm)[^.]*\.|LayerNorm|_bn\d", re.IGNORECASE)


def no_decay(name: str, p: torch.Tensor) -> bool:
    return p.ndim <= 1 or name.endswith(".bias") or bool(_NORM.search(name))


def param_groups(model: torch.nn.Module, lr: float, weight_decay: float,
                 lr_scale: dict[str, float] | Callable[[str], float] | None = None,
                 group_of: Callable[[str], str] | None = None) -> list[dict]:
    """Group trainable parameters by (layer group, lr multiplier, decay) so no parameter is in two groups.

    Each group carries `name` (for logging `lr/<name>`), `lr`, `weight_decay` and `lr_scale`.
    """
    scale = (lr_scale if callable(lr_scale) else (lambda n: (lr_scale or {}).get(n, 1.0)))
    buckets: dict[tuple, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        s = float(scale(name))
        nd = no_decay(name, p)
        g = group_of(name) if group_of else "all"
        key = (g, s, nd)
        if key not in buckets:
            buckets[key] = {"name": f"{g}{'/no_decay' if nd else ''}" if group_of else ("no_decay" if nd else "decay"),
                            "params": [], "param_names": [], "lr": lr * s, "initial_lr": lr * s,
                            "weight_decay": 0.0 if nd else weight_decay, "lr_scale": s}
        buckets[key]["params"].append(p)
        buckets[key]["param_names"].append(name)
    return list(buckets.values())


def build_optimizer(groups: list[dict], name: str, lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    if not groups:
        raise ValueError("No trainable parameters: the strategy/method froze everything.")
    if name == "adamw":
        # On CUDA the fused kernel: one launch per step instead of a dozen foreach launches, which
        # counts when a small model's step is launch-bound. CPU keeps foreach (same numbers as before).
        cuda = all(p.is_cuda for g in groups for p in g["params"])
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                 **({"fused": True} if cuda else {"foreach": True}))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, foreach=True)
    raise ValueError(f"train.optimizer: {name!r} is not known; use adamw or sgd.")
