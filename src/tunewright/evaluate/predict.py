"""Run a model over a dataset: logits for every example, and the task metrics."""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from ..data.collate import to_device
from .metrics import classification_metrics, lm_metrics, multilabel_metrics, regression_metrics


@torch.no_grad()
def predict_logits(model, dataset, collate, batch_size: int, precision=None,
                   indices=None) -> tuple[np.ndarray, np.ndarray | None]:
    """All logits (N, C) (or (N,) for regression) in dataset order, plus the labels if present.

    `precision` (training/precision.py) gives the device and autocast; None: fp32 on the CPU."""
    model.eval()
    device = precision.device if precision is not None else torch.device("cpu")
    autocast = precision.autocast if precision is not None else contextlib.nullcontext
    idx = list(range(len(dataset))) if indices is None else list(indices)
    outs, labels = [], []
    for s in range(0, len(idx), batch_size):
        batch = to_device(collate([dataset[j] for j in idx[s:s + batch_size]]), device)
        with autocast():
            logits = model(batch)
        outs.append(logits.float().cpu())
        if "labels" in batch:
            labels.append(batch["labels"].cpu())
    if not outs:
        return np.zeros((0,)), None
    return torch.cat(outs).numpy(), (torch.cat(labels).numpy() if labels else None)


@torch.no_grad()
def lm_eval(model, dataset, collate, batch_size: int, precision) -> dict:
    """Token-weighted NLL over the dataset -> loss and perplexity (never materialises all logits)."""
    model.eval()
    nll, tokens = 0.0, 0
    for s in range(0, len(dataset), batch_size):
        batch = to_device(collate([dataset[j] for j in range(s, min(s + batch_size, len(dataset)))]), precision.device)
        with precision.autocast():
            logits = model(batch)
        labels = batch["labels"][:, 1:]
        lg = logits[:, :-1, :].float()
        nll += float(F.cross_entropy(lg.reshape(-1, lg.size(-1)), labels.reshape(-1), ignore_index=-100,
                                     reduction="sum"))
        tokens += int((labels != -100).sum())
    return lm_metrics(nll, tokens)


def evaluate_dataset(model, dataset, collate, task: str, num_labels: int | None, batch_size: int, precision) -> dict:
    if task == "causal_lm":
        return lm_eval(model, dataset, collate, batch_size, precision)
    logits, labels = predict_logits(model, dataset, collate, batch_size, precision)
    if task in ("classification", "image_classification"):
        return classification_metrics(logits, labels.astype(np.int64), num_labels)
    if task == "multilabel":
        return multilabel_metrics(logits, labels)
    return regression_metrics(logits, labels)


def accuracy(model, dataset, batch_size: int = 512, collate=None) -> float:
    """Top-1 accuracy over a dataset of example dicts (the drivers' tensor examples: `stack_collate` by
    default), fp32 on the CPU; the model's train/eval mode is left as it was."""
    from ..data.examples import stack_collate

    was = model.training
    logits, labels = predict_logits(model, dataset, collate or stack_collate, batch_size)
    model.train(was)
    return float(torch.from_numpy(logits.argmax(-1) == labels).float().mean())
