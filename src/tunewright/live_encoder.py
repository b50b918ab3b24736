"""A pretrained model as the drivers' shared encoder, trained live (multitask/ and continual/).

`live_encoder(cfg)` loads `model.name`, applies `strategy` and `method` as `tunewright train` does
(plan_strategy, then apply_method, which keeps what the strategy chose), and hands back the model
with its head replaced by the identity, wrapped as `BatchEncoder` (a batch dict -> (B, H)), plus the
plans' fit() callbacks (frozen layers in eval mode, BatchNorm on stored statistics, ...) and the
number of training batches BatchNorm statistics are recomputed from before an evaluation (0: none;
strategies/frozen_mode.py).

It sits beside `run` because it needs both `strategies` and `peft`, which the drivers above share.
The plans' per-group LR multiples are not applied here (one LR for everything that trains).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .models import load_model
from .peft import apply_method
from .strategies import plan_strategy


class BatchEncoder(nn.Module):
    """A live `TaskModel` (any strategy / PEFT method applied) as a shared encoder: batch -> features (B, H)."""
    takes_batch = True

    def __init__(self, task_model: nn.Module):
        super().__init__()
        self.model, self.feature_dim = task_model, task_model.hidden_size
        # Hugging Face text models branch on the attention mask's values (which attention kernel to
        # use), so per-example gradients (continual/core.py) cannot vmap over them.
        self.vmap_safe = task_model.modality != "text"

    def forward(self, batch: dict) -> torch.Tensor:
        if "attention_mask" not in batch:                       # images: (B, 3, S, S) pixel_values
            return self.model.features(batch)
        # Token rows are stored padded to data.max_length; the batch is cut to its longest row, so a
        # short batch does not pay for padding it masks anyway.
        longest = int(batch["attention_mask"].sum(1).max())
        return self.model.features({k: (v[:, :longest] if k in ("input_ids", "attention_mask") else v)
                                    for k, v in batch.items()})


@dataclass
class LiveEncoder:
    encoder: BatchEncoder
    callbacks: list = field(default_factory=list)
    bn_recalibrate_batches: int = 0       # > 0: recompute BatchNorm statistics before evaluating
    preprocessor: object = None           # the tokenizer or ImageSpec load_model handed back


def live_encoder(cfg) -> LiveEncoder:
    """`model.name` loaded (pretrained), `strategy` and `method` applied; see the module docstring."""
    model, preprocessor = load_model(cfg, 2)
    plans = [plan_strategy(model, cfg)]
    plans.append(apply_method(model, cfg, plans[0]))
    model.head = nn.Identity()                                   # the drivers own their heads
    return LiveEncoder(BatchEncoder(model), [cb for p in plans for cb in p.callbacks],
                       max((p.bn_recalibrate_batches for p in plans), default=0), preprocessor)
