"""Evaluation sharded across ranks, with metrics equal to one process's, exactly.

The split is by evaluation batch: rank r runs batches r, r+W, r+2W, ... of the same batch list one
process runs (`evaluate.predict.eval_batches`). Each batch has the same rows and the same padded shape
wherever it runs, so its logits are the same bits; the per-batch outputs are gathered to every rank and
the metrics computed over all rows in dataset order (`metrics_of`): the NLL sum of a causal LM is added
in the same order too. Every rank ends with the same metrics, so early stopping and the best-model
choice agree across ranks.
"""
from __future__ import annotations

from ..evaluate.predict import batch_outputs, eval_batches, metrics_of
from .collective import shared_map


def evaluate_sharded(model, dataset, collate, task: str, num_labels: int | None, batch_size: int, precision) -> dict:
    batches = eval_batches(len(dataset), batch_size)
    outputs = shared_map(lambda idx: batch_outputs(model, dataset, collate, task, [idx], precision)[0], batches)
    return metrics_of(task, outputs, num_labels)
