"""Learning-rate schedules as pure functions of the step: `multiplier(step) -> float` in [0, 1].

Why not only `torch.optim.lr_scheduler`: torch has no slanted-triangular schedule and no single
"warmup then X" scheduler; SequentialLR chains work but their state does not resume as plain JSON.
A pure multiplier wrapped in `LambdaLR` resumes exactly from `last_epoch` alone and is trivial to
plot for every param group before training (`tunewright lr-plot`).

Each function takes `step` (0-based optimizer step) and `total` steps. Where torch has the
schedule, the function equals it step for step (tests/unit/optim/test_schedules_vs_torch.py):
constant/linear warmup = LinearLR, cosine = CosineAnnealingLR, polynomial = PolynomialLR,
one_cycle = OneCycleLR. Slanted triangular is ULMFiT's and exists only here.
"""
from __future__ import annotations

import math
from functools import partial

import torch

from ..config.schema import SCHEDULES as SCHEDULE_NAMES


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
    """Smith's one-cycle LR (Smith & Topin 2019), exactly torch's OneCycleLR (cosine, two phases).

    Cosine from 1/div up to 1 over steps [0, pct_start*total - 1], then cosine down to
    1/(div*final_div) at step total - 1. (`warmup` is unused: the first phase is the warmup.)
    """
    def anneal(a: float, b: float, pct: float) -> float:
        return b + (a - b) / 2 * (math.cos(math.pi * min(max(pct, 0.0), 1.0)) + 1)
    peak = pct_start * total - 1
    if peak > 0 and step <= peak:
        return anneal(1 / div, 1.0, step / peak)
    return anneal(1.0, 1 / (div * final_div), (step - max(peak, 0)) / max(total - 1 - max(peak, 0), 1e-9))


# The names come from the config schema (the one list, also shown by `tunewright config`); each
# schedule is the function of that name in this module, so a name without a function fails at import.
SCHEDULES = {name: globals()[name] for name in SCHEDULE_NAMES}


def schedule_fn(name: str, total: int, warmup: int, **kw):
    if name not in SCHEDULES:
        raise ValueError(f"train.schedule: {name!r} is not known; choose one of {', '.join(SCHEDULES)}.")
    return partial(_call, SCHEDULES[name], total=total, warmup=warmup, kw=kw)


def _call(fn, step, total, warmup, kw):
    return fn(step, total, warmup, **kw)


def schedule_options(train_cfg) -> dict:
    """The keyword arguments of `train_cfg.schedule`'s function, from the train config section."""
    t = train_cfg
    return {"slanted_triangular": {"cut_frac": t.cut_frac, "ratio": t.stlr_ratio},
            "one_cycle": {"pct_start": t.pct_start, "div": t.div_factor, "final_div": t.final_div_factor},
            "polynomial": {"power": t.power, "min_ratio": t.min_lr_ratio},
            "cosine": {"min_ratio": t.min_lr_ratio}}.get(t.schedule, {})


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, total: int, warmup_ratio: float, **kw):
    """A LambdaLR over the multiplier; every param group follows the same shape at its own peak LR."""
    warmup = int(round(total * warmup_ratio))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_fn(name, total, warmup, **kw))
