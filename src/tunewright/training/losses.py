"""The loss for each task. logits come from `TaskModel.forward`; labels from the batch."""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F


def classification_loss(logits, batch, label_smoothing: float = 0.0, class_weights=None):
    # logits (B, C), labels (B,) int64
    w = class_weights.to(logits.device) if class_weights is not None else None
    return F.cross_entropy(logits.float(), batch["labels"], weight=w, label_smoothing=label_smoothing)


def multilabel_loss(logits, batch, pos_weight=None, **_):
    # logits (B, C), labels (B, C) multi-hot float
    return F.binary_cross_entropy_with_logits(logits.float(), batch["labels"].float(), pos_weight=pos_weight)


def regression_loss(logits, batch, **_):
    # logits (B,), labels (B,) float
    return F.mse_loss(logits.float().view(-1), batch["labels"].float().view(-1))


def causal_lm_loss(logits, batch, **_):
    # logits (B, T, V); labels (B, T) with -100 where no loss; predict token t+1 from position t.
    shift_logits = logits[:, :-1, :].float()
    shift_labels = batch["labels"][:, 1:]
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                           ignore_index=-100)


def loss_for(task: str, label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None):
    if task in ("classification", "image_classification"):
        return partial(classification_loss, label_smoothing=label_smoothing, class_weights=class_weights)
    if task == "multilabel":
        return multilabel_loss
    if task == "regression":
        return regression_loss
    if task == "causal_lm":
        return causal_lm_loss
    raise ValueError(f"task: {task!r} has no loss")


def loss_units(task: str, class_weights: torch.Tensor | None = None):
    """`batch -> what the task's mean loss divides by` (a float tensor): rows; the summed class weights
    of the rows' labels under a class-weighted cross entropy; target tokens (labels[:, 1:] != -100) for
    a causal LM. Several ranks weight their mean losses by these (distributed/parallel.py), so the
    gradient equals one process's over the whole global batch, whatever each rank holds."""
    def rows(batch):
        return torch.tensor(float(batch["labels"].shape[0]))

    if task == "causal_lm":
        return lambda batch: (batch["labels"][:, 1:] != -100).sum().float().cpu()
    if class_weights is not None and task in ("classification", "image_classification"):
        return lambda batch: class_weights.to(batch["labels"].device)[batch["labels"]].sum().float().cpu()
    return rows
