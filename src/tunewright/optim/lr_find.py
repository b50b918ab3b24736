"""The LR range test (Smith 2017, "Cyclical Learning Rates"; fastai's `lr_find`, Lightning's `lr_find`).

Train for `num` steps while the LR grows exponentially from `start` to `end`,

    lr_i = start * (end / start) ** (i / (num - 1)),

record the loss, smoothed by a debiased exponential moving average (beta = 0.98, as fastai), and
stop early once the smoothed loss exceeds `diverge` x its minimum. The suggestion is the LR where
the smoothed loss falls fastest, the minimum of d loss / d log10(lr) (Lightning's default), skipping
the first `skip_begin` points, where the average is still warming up. Every param group keeps its
own multiple (discriminative LRs), so the sweep is over the base LR. The model and the optimizer
are put back as they were afterwards.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch


@dataclass
class LRFind:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)      # smoothed
    raw_losses: list[float] = field(default_factory=list)
    suggestion: float | None = None
    stopped_early: bool = False
    start: float = 0.0
    end: float = 0.0


def suggest(lrs: list[float], losses: list[float], skip_begin: int = 10, skip_end: int = 1) -> float | None:
    """The LR of the steepest descent of `losses` against log10(lr); None with too few points."""
    if len(lrs) < 3:
        return None
    lo, hi = min(skip_begin, len(lrs) // 4), max(len(lrs) - skip_end, 2)
    if hi - lo < 2:
        lo, hi = 0, len(lrs)
    grads = np.gradient(np.asarray(losses[lo:hi]), np.log10(np.asarray(lrs[lo:hi])))
    return float(lrs[lo + int(np.argmin(grads))])


def lr_find(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[dict],
            loss_fn: Callable, *, start: float = 1e-7, end: float = 10.0, num: int = 100,
            beta: float = 0.98, diverge: float = 4.0, skip_begin: int = 10) -> LRFind:
    """Run the range test; `batches` yields ready batches (on the model's device)."""
    if not 0 < start < end:
        raise ValueError(f"lr-find: need 0 < start < end, got start={start}, end={end}")
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    scales = [g.get("lr_scale", 1.0) for g in optimizer.param_groups]
    result = LRFind(start=start, end=end)
    avg, best = 0.0, math.inf
    model.train()
    try:
        for i in range(num):
            lr = start * (end / start) ** (i / max(num - 1, 1))
            for g, s in zip(optimizer.param_groups, scales):
                g["lr"] = lr * s
            batch = next(batches)
            loss = loss_fn(model(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                result.stopped_early = True
                break
            avg = beta * avg + (1 - beta) * value
            smoothed = avg / (1 - beta ** (i + 1))        # debiased: early points are not pulled to 0
            result.lrs.append(lr)
            result.raw_losses.append(value)
            result.losses.append(smoothed)
            best = min(best, smoothed)
            if smoothed > diverge * best and i > skip_begin:
                result.stopped_early = True
                break
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        optimizer.zero_grad(set_to_none=True)
    result.suggestion = suggest(result.lrs, result.losses, skip_begin)
    return result


def plot_lr_find(result: LRFind, path, title: str = "LR finder") -> None:
    """Loss against LR (log scale), the suggestion marked; written as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(result.lrs, result.raw_losses, color="0.8", lw=1, label="loss")
    ax.plot(result.lrs, result.losses, color="C0", lw=2, label="smoothed loss")
    if result.suggestion is not None:
        i = result.lrs.index(result.suggestion)
        ax.plot([result.suggestion], [result.losses[i]], "o", color="C3", ms=8,
                label=f"suggestion {result.suggestion:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (base; each param group keeps its multiple)")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    finite = [v for v in result.losses if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) - 0.05 * abs(min(finite)), min(max(finite), 4 * min(finite) + 1e-9) * 1.05)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
