"""Learning-rate schedules as pure functions of the step: `multiplier(step) -> float` in [0, 1].

Why not only `torch.optim.lr_scheduler`: torch has no slanted-triangular schedule and no single
"warmup then X" scheduler; SequentialLR chains work but their state does not resume as plain JSON.
A pure multiplier wrapped in `LambdaLR` resumes exactly from `last_epoch` alone and is trivial to
plot for every param group before training (`tunewright lr-plot`).

Each function takes `step` (0-based optimizer step) and `total` steps.
"""
from __future__ import annotations

import math
from functools import partial

import torch


def constant(step: int, total: int, warmup: int = 0) -> float:
    return min(1.0, (step + 1) / warmup) if warmup and step < warmup else 1.0


def linear(step: int, total: int, warmup: int = 0) -> float:
    """Linear warmup to 1, then linear decay to 0 at `total` (BERT's schedule)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def cosine(step: int, total: int, warmup: int = 0, min_ratio: float = 0.0) -> float:
    """Linear warmup, then half a cosine from 1 down to `min_ratio`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def polynomial(step: int, total: int, warmup: int = 0, power: float = 1.0, min_ratio: float = 0.0) -> float:
    """Linear warmup, then (1 - progress)^power decay."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * (1 - progress) ** power


def slanted_triangular(step: int, total: int, warmup: int = 0, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """ULMFiT (Howard & Ruder 2018, eq. 3): short linear rise for cut_frac of the steps, long linear decay.

    lr_t = lr_max * (1 + p (ratio - 1)) / ratio, p = t/cut if t < cut else 1 - (t - cut)/(cut (1/cut_frac - 1)).
    """
    cut = max(1, math.floor(total * cut_frac))
    p = step / cut if step < cut else 1 - (step - cut) / (cut * (1 / cut_frac - 1))
    return (1 + max(0.0, p) * (ratio - 1)) / ratio


def one_cycle(step: int, total: int, warmup: int = 0, pct_start: float = 0.3, div: float = 25.0,
              final_div: float = 1e4) -> float:
    """Smith's one-cycle LR with cosine annealing (torch OneCycleLR's default shape, LR only)."""
    up = max(1, int(total * pct_start))
    if step < up:
        return (1 / div) + (1 - 1 / div) * 0.5 * (1 - math.cos(math.pi * step / up))
    progress = min(1.0, (step - up) / max(1, total - up))
    lo = 1 / (div * final_div)
    return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * progress))


SCHEDULES = {"constant": constant, "linear": linear, "cosine": cosine, "polynomial": polynomial,
             "slanted_triangular": slanted_triangular, "one_cycle": one_cycle}


def schedule_fn(name: str, total: int, warmup: int, **kw):
    if name not in SCHEDULES:
        raise ValueError(f"train.schedule: {name!r} is not known; choose one of {', '.join(SCHEDULES)}.")
    return partial(_call, SCHEDULES[name], total=total, warmup=warmup, kw=kw)


def _call(fn, step, total, warmup, kw):
    return fn(step, total, warmup, **kw)


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, total: int, warmup_ratio: float, **kw):
    """A LambdaLR over the multiplier; every param group follows the same shape at its own peak LR."""
    warmup = int(round(total * warmup_ratio))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_fn(name, total, warmup, **kw))
