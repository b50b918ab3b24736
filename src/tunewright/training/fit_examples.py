"""`fit_examples(model, dataset, cfg, ...)`: the one `fit()` with the optimizer, precision and loss that
the drivers calling `fit()` many times share (multitask/, continual/, meta/, domain/): AdamW over the
parameters that train, a constant LR, fp32. Their data are tensors (data/examples.py). Given a folder,
the phase writes resumable checkpoints there with the same Checkpointer and checkpoint module as
`tunewright train`, and continues exactly from one (`resume_from`).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ..data.examples import stack_collate
from .callbacks import CallbackList, Checkpointer
from .checkpoint import load_checkpoint, read_record
from .loop import TrainState, fit
from .precision import resolve_precision
from .resume_check import check_resume, run_record


def cross_entropy(logits, batch):
    return F.cross_entropy(logits.float(), batch["labels"])


def fit_examples(model: torch.nn.Module, dataset, cfg, *, loss_fn: Callable = cross_entropy, callbacks: Sequence = (),
                 lr: Optional[float] = None, epochs: Optional[int] = None, max_steps: Optional[int] = None,
                 seed: Optional[int] = None, batch_size: Optional[int] = None, collate: Callable = stack_collate,
                 params=None, epoch_batches: Optional[Callable] = None, weight_decay: float = 0.0,
                 checkpoints: Optional[Path] = None, resume_from: Optional[Path] = None) -> TrainState:
    """Train `model` on `dataset` with the one `fit()`: AdamW (no weight decay by default, so head rows
    of classes that get no gradient stay put), constant LR, fp32, on the CPU or `train.device`.

    `checkpoints`: write resumable checkpoints to this folder (`checkpoint.every_steps`, `keep_last`).
    `resume_from`: a checkpoint of this same phase to continue from (model, optimizer, RNG, loop and
    callback state); refused, naming the keys, when the settings that change the training differ."""
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    t = dataclasses.replace(t, epochs=epochs or t.epochs, max_steps=max_steps, seed=t.seed if seed is None else seed,
                            batch_size=batch_size or t.batch_size, eval_every_steps=None, grad_accum=1)
    run_cfg = dataclasses.replace(cfg, train=t, data=dataclasses.replace(cfg.data, bucket=False))
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr or t.lr, weight_decay=weight_decay)
    precision = resolve_precision("fp32", torch.device("cpu"))
    cbs, state = CallbackList(list(callbacks)), None
    if checkpoints is not None:
        record = run_record(run_cfg, 1)
        cbs.callbacks.append(Checkpointer(checkpoints, cfg.checkpoint.every_steps, cfg.checkpoint.keep_last, cbs,
                                          record=record))
        if resume_from is not None:
            check_resume(read_record(resume_from), record, resume_from, False,
                         log=lambda m: print(m, file=sys.stderr, flush=True))
            saved = load_checkpoint(resume_from, model=model, optimizer=optimizer)
            state = TrainState.from_dict(saved["loop"])
            cbs.load_state_dict(saved.get("callbacks", {}))
    return fit(model, dataset, collate, optimizer, None, run_cfg, loss_fn=loss_fn, precision=precision,
               callbacks=cbs, epoch_batches=epoch_batches, state=state)
