"""List of example dicts -> one batch dict of tensors (the batch contract, docs/architecture.md).

Text rows are padded on the right to the longest row IN THE BATCH (dynamic padding), not to
``max_length``: with length bucketing most batches then carry almost no padding. With
``data.pad_to_multiple_of`` N the length is rounded up to a multiple of N: fewer distinct shapes.

    input_ids      (B, T) int64, padded with the tokenizer's pad id
    attention_mask (B, T) int64, 1 on real tokens
    pixel_values   (B, 3, S, S) float32
    inputs         (B, ...) float32
    labels         (B,) int64 classification | (B,) float32 regression |
                   (B, C) float32 multi-hot multilabel | (B, T) int64 causal LM, -100 on padding
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from tunewright.data.text import IGNORE_INDEX


def pad_id_of(tokenizer: Any) -> int:
    """The tokenizer's pad id; EOS for tokenizers without one (many causal LMs); else 0.
    Padded positions are masked by attention_mask and -100 labels, so the choice is harmless."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return 0


def _pad(rows: list[list[int]], value: int, multiple: int = 1) -> torch.Tensor:
    longest = -(-max(len(r) for r in rows) // multiple) * multiple     # rounded up to the multiple
    out = torch.full((len(rows), longest), value, dtype=torch.long)   # (B, T)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.as_tensor(r, dtype=torch.long)
    return out


@dataclass
class Collator:
    """Batches examples for ``task``. A plain object (not a closure) so DataLoader worker
    processes can pickle it. Examples without ``labels`` (prediction inputs) are fine."""

    task: str
    pad_id: int = 0
    num_labels: Optional[int] = None        # multilabel: C, the multi-hot width
    pad_multiple: int = 1                   # T rounded up to this (data.pad_to_multiple_of)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("cannot collate an empty batch")
        first, batch = examples[0], {}
        if "input_ids" in first:
            ids = [ex["input_ids"] for ex in examples]
            batch["input_ids"] = _pad(ids, self.pad_id, self.pad_multiple)   # (B, T)
            lengths = torch.tensor([len(r) for r in ids])
            batch["attention_mask"] = (torch.arange(batch["input_ids"].shape[1])[None, :]
                                       < lengths[:, None]).long()             # (B, T)
        if "pixel_values" in first:
            batch["pixel_values"] = torch.stack([ex["pixel_values"] for ex in examples])
        if "inputs" in first:
            batch["inputs"] = torch.stack([torch.as_tensor(ex["inputs"], dtype=torch.float32)
                                           for ex in examples])
        if "labels" in first:
            batch["labels"] = self.labels([ex["labels"] for ex in examples])
        return batch

    def labels(self, labels: list) -> torch.Tensor:
        if self.task == "causal_lm":
            return _pad(labels, IGNORE_INDEX, self.pad_multiple)              # (B, T)
        if self.task == "regression":
            return torch.tensor(labels, dtype=torch.float32)                  # (B,)
        if self.task == "multilabel":
            if self.num_labels is None:
                raise ValueError("multilabel collation needs num_labels")
            out = torch.zeros(len(labels), self.num_labels, dtype=torch.float32)  # (B, C)
            for i, idx in enumerate(labels):
                out[i, list(idx)] = 1.0
            return out
        return torch.tensor(labels, dtype=torch.long)                         # (B,)


def to_device(batch: dict, device: torch.device) -> dict:
    """A batch's tensors on `device` (non-blocking); other values as they are."""
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
