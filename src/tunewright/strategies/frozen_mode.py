"""Frozen layers run in eval mode: `eval_frozen(model)` and its callback `FrozenEval`.

A frozen layer should compute what the pretrained model computes at inference: no dropout, and
BatchNorm with its stored statistics. In train mode a frozen BatchNorm would still update its
running statistics (buffers, not parameters), so the "frozen" backbone would drift; and dropout
would make a frozen backbone's features differ every epoch, which also rules out caching them.
Keras freezes BatchNorm the same way; fastai keeps it training (`train_bn`), which is what
`strategy_options.frozen_train_mode: true` gives.

BatchNorm statistics of layers that DO train are a separate choice, `strategy_options.bn_stats`:
`frozen` runs every BatchNorm on its stored statistics while its scale and shift still train
(detectron2's FrozenBatchNorm; the usual choice for small batches and small data). `auto` does that
under a PEFT method (BitFit trains BatchNorm shifts; with batch statistics in training and running
statistics in eval it trained to loss 1.3 on digits while eval accuracy stayed at 0.17), and
when the head was warm-started on cached eval-mode features (lp_ft, warm_start_head): in train mode
the batch statistics of a new domain (8x8 digits upscaled, grayscale Fashion-MNIST) move every
feature the probe was fit on, and the first fine-tuning steps then start from a loss of ~6 instead
of ~0.01 (measured: lp_ft on digits fell to 0.40 test accuracy that way, benchmarks/bench_strategies.py).

`recalibrate` (what `auto` picks for full fine-tuning of a BatchNorm network) lets BatchNorm train
as usual and, before every evaluation, recomputes the running statistics of the BatchNorm layers
that train from `bn_recalibrate_batches` training batches at the current weights. Pretrained
EfficientNet-Lite0 keeps TensorFlow's momentum (0.01), so after 82 steps its running statistics are
still 44% ImageNet's: full fine-tuning on digits evaluated at 0.706 test accuracy, and 0.972 with
the same weights after recalibration. `torch.optim.swa_utils.update_bn` does the same but runs
the whole model in train mode, dropout included, which perturbs the statistics and draws from the
global RNG mid-run; `recalibrate_bn` keeps everything else in eval mode, samples its batches from
its own seeded generator, restores the global generators (augmentation draws from them), and uses
full batches only, so exact resume is unaffected.

The loop calls `model.train()` when training starts and after every evaluation, so the callback
re-applies this at the start of every epoch and after every evaluation.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..training.loop import to_device
from ..training.rng import capture_rng, restore_rng


def eval_frozen(model: nn.Module, frozen_layers: bool = True, bn_stats: bool = False) -> list[str]:
    """Put `model` in train mode, then every maximal submodule whose parameters are all frozen in eval mode
    (with `frozen_layers`), and every BatchNorm layer in eval mode (with `bn_stats`).

    "Maximal": a frozen block goes to eval as a whole, dropout included, but a dropout module that
    sits directly in a module that trains keeps training. Returns the names of the modules put in eval.
    """
    model.train()
    names: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        params = list(module.parameters())
        if (bn_stats and isinstance(module, nn.modules.batchnorm._BatchNorm)) or \
                (frozen_layers and params and not any(p.requires_grad for p in params)):
            module.eval()
            names.append(prefix or "<root>")
            return
        for child_name, child in module.named_children():
            visit(f"{prefix}.{child_name}" if prefix else child_name, child)

    visit("", model)
    return names


class FrozenEval:
    """Keeps frozen layers (and, with bn_stats, every BatchNorm) in eval mode during training (see the
    module docstring)."""

    def __init__(self, model: nn.Module | None = None, frozen_layers: bool = True, bn_stats: bool = False):
        self.model = model                 # None: the model fit() trains (ctx.model)
        self.frozen_layers, self.bn_stats = frozen_layers, bn_stats

    def _apply(self, ctx) -> None:
        eval_frozen(self.model if self.model is not None else ctx.model, self.frozen_layers, self.bn_stats)


    def on_epoch_start(self, ctx) -> None:
        self._apply(ctx)

    def on_evaluate(self, ctx, metrics: dict) -> None:
        self._apply(ctx)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, dataset, collate, device, batch_size: int, max_batches: int,
                   autocast: Callable = contextlib.nullcontext) -> int:
    """Recompute the running mean and variance of every BatchNorm layer that trains, as the average over
    up to `max_batches` full training batches (a fixed seeded sample), the rest of the model in eval
    mode and under `autocast` (the evaluation's precision). Module modes, momenta and every global RNG
    (training-time augmentation draws from them) are restored; returns the number of examples used.

    Only full batches: with momentum None, BatchNorm averages per-batch statistics with equal weight,
    so a last batch of 2 would count as much as one of 32. The statistics come from training inputs
    as the training transform gives them (augmented, if augmentation is on), as train-mode BatchNorm
    sees them anyway."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
           and any(p.requires_grad for p in m.parameters(recurse=False))]
    n = min(len(dataset), max_batches * batch_size)
    n = n - n % batch_size if n >= batch_size else n     # one short batch only when there is no full one
    if not bns or n == 0:
        return 0
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in bns]
    rng = capture_rng()
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                      # None: a cumulative average over the batches below
        m.train()
    idx = np.random.default_rng(0).permutation(len(dataset))[:n].tolist()   # its own generator: a fixed sample
    try:
        for s in range(0, n, batch_size):
            with autocast():
                model(to_device(collate([dataset[j] for j in idx[s:s + batch_size]]), device))
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        for m, training in modes.items():
            m.train(training)
        restore_rng(*rng)
    return n
