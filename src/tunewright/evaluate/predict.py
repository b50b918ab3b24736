"""Run a model over a dataset: logits for every example, and the task metrics."""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from .. import progress
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
    for s in progress.track(range(0, len(idx), batch_size), "predict", len(idx), "examples",
                            size=lambda s: min(batch_size, len(idx) - s)):
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


def eval_batches(n: int, batch_size: int, lengths=None) -> list:
    """The evaluation batches over n rows: the unit several ranks split an evaluation by, so each batch is
    computed with the same rows and shape whichever rank runs it (distributed/evaluate.py).

    With `lengths` (token counts of text rows) the rows go shortest first, so each batch pads to a length
    close to its own rows'. On Reuters-R8's test set at 256 tokens this is 217k real tokens against 560k
    padded positions in row order, where nearly every batch of 64 holds one long article: evaluation ran
    about 2.5x faster. The metrics do not depend on the order (logits and labels stay paired)."""
    if lengths is None:
        return [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    order = np.argsort(np.asarray(lengths), kind="stable").tolist()
    return [order[s:s + batch_size] for s in range(0, n, batch_size)]


def text_lengths(dataset) -> list[int] | None:
    """Token counts of a tokenized text dataset's rows, or None (images, cached features, empty)."""
    if len(dataset) == 0 or "input_ids" not in dataset[0]:
        return None
    return [len(dataset[i]["input_ids"]) for i in range(len(dataset))]


@torch.no_grad()
def batch_outputs(model, dataset, collate, task: str, batches, precision) -> list[tuple]:
    """Per batch, what the metrics need: (logits (B, ...) float32, labels or None) as numpy, or for a causal
    LM (summed token NLL, target tokens)."""
    model.eval()
    out = []
    for idx in batches:
        batch = to_device(collate([dataset[j] for j in idx]), precision.device)
        with precision.autocast():
            logits = model(batch)
        if task == "causal_lm":
            labels = batch["labels"][:, 1:]
            lg = logits[:, :-1, :].float()
            out.append((float(F.cross_entropy(lg.reshape(-1, lg.size(-1)), labels.reshape(-1), ignore_index=-100,
                                              reduction="sum")), int((labels != -100).sum())))
        else:
            out.append((logits.float().cpu().numpy(), batch["labels"].cpu().numpy() if "labels" in batch else None))
    return out


def metrics_of(task: str, outputs: list[tuple], num_labels: int | None) -> dict:
    """The task's metrics from `batch_outputs` of every batch, in batch order."""
    if task == "causal_lm":
        nll = 0.0
        for batch_nll, _ in outputs:          # the same float additions, in the same order, as one process
            nll += batch_nll
        return lm_metrics(nll, sum(t for _, t in outputs))
    if not outputs:
        logits, labels = np.zeros((0,)), None
    else:
        logits = np.concatenate([o[0] for o in outputs])
        labels = np.concatenate([o[1] for o in outputs]) if outputs[0][1] is not None else None
    if task in ("classification", "image_classification"):
        return classification_metrics(logits, labels.astype(np.int64), num_labels)
    if task == "multilabel":
        return multilabel_metrics(logits, labels)
    return regression_metrics(logits, labels)


def evaluate_dataset(model, dataset, collate, task: str, num_labels: int | None, batch_size: int, precision,
                     label: str = "evaluate") -> dict:
    lengths = text_lengths(dataset)
    batches = eval_batches(len(dataset), batch_size, lengths)
    batches = progress.track(batches, label, len(dataset), "examples", size=len,
                             work=lambda b: progress.padded_work([b], lengths) or 0.0,
                             work_total=progress.padded_work(batches, lengths))
    return metrics_of(task, batch_outputs(model, dataset, collate, task, batches, precision), num_labels)


def accuracy(model, dataset, batch_size: int = 512, collate=None) -> float:
    """Top-1 accuracy over a dataset of example dicts (the drivers' tensor examples: `stack_collate` by
    default), fp32 on the CPU; the model's train/eval mode is left as it was."""
    from ..data.examples import stack_collate

    was = model.training
    logits, labels = predict_logits(model, dataset, collate or stack_collate, batch_size)
    model.train(was)
    return float(torch.from_numpy(logits.argmax(-1) == labels).float().mean())
