"""`fit_examples(model, dataset, cfg, ...)`: the one `fit()` with the optimizer, precision and loss that
the drivers calling `fit()` many times share (multitask/, continual/, meta/, domain/): AdamW over the
parameters that train, a constant LR, fp32, no checkpoints. Their data are tensors (data/examples.py).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ..data.examples import stack_collate
from .loop import TrainState, fit
from .precision import resolve_precision


def cross_entropy(logits, batch):
    return F.cross_entropy(logits.float(), batch["labels"])


def fit_examples(model: torch.nn.Module, dataset, cfg, *, loss_fn: Callable = cross_entropy, callbacks: Sequence = (),
                 lr: Optional[float] = None, epochs: Optional[int] = None, max_steps: Optional[int] = None,
                 seed: Optional[int] = None, batch_size: Optional[int] = None, collate: Callable = stack_collate,
                 params=None, epoch_batches: Optional[Callable] = None, weight_decay: float = 0.0) -> TrainState:
    """Train `model` on `dataset` with the one `fit()`: AdamW (no weight decay by default, so head rows
    of classes that get no gradient stay put), constant LR, fp32, on the CPU or `train.device`."""
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    t = dataclasses.replace(t, epochs=epochs or t.epochs, max_steps=max_steps, seed=t.seed if seed is None else seed,
                            batch_size=batch_size or t.batch_size, eval_every_steps=None, grad_accum=1)
    run_cfg = dataclasses.replace(cfg, train=t, data=dataclasses.replace(cfg.data, bucket=False))
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr or t.lr, weight_decay=weight_decay)
    precision = resolve_precision("fp32", torch.device("cpu"))
    return fit(model, dataset, collate, optimizer, None, run_cfg, loss_fn=loss_fn, precision=precision,
               callbacks=callbacks, epoch_batches=epoch_batches)
