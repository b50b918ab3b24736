"""Evaluation sharded across ranks, with metrics equal to one process's, exactly.

The split is by evaluation batch: rank r runs batches r, r+W, r+2W, ... of the same batch list one
process runs (`evaluate.predict.eval_batches`). Each batch has the same rows and the same padded shape
wherever it runs, so its logits are the same bits; the per-batch outputs are gathered to every rank and
the metrics computed over all rows in dataset order (`metrics_of`): the NLL sum of a causal LM is added
in the same order too. Every rank ends with the same metrics, so early stopping and the best-model
choice agree across ranks.
"""
from __future__ import annotations

from .. import progress
from ..evaluate.predict import batch_outputs, eval_batches, metrics_of, text_lengths
from .collective import share, shared_map


def evaluate_sharded(model, dataset, collate, task: str, num_labels: int | None, batch_size: int, precision,
                     label: str = "evaluate") -> dict:
    lengths = text_lengths(dataset)
    batches = eval_batches(len(dataset), batch_size, lengths)
    mine = share(batches)
    with progress.phase(label, sum(map(len, mine)), work_total=progress.padded_work(mine, lengths)) as shown:
        def one(idx):
            out = batch_outputs(model, dataset, collate, task, [idx], precision)[0]
            shown.advance(len(idx), work=progress.padded_work([idx], lengths) or 0.0)
            return out
        outputs = shared_map(one, batches)
    return metrics_of(task, outputs, num_labels)
