"""TaskModel: a pretrained backbone plus a task head, behind one batch-dict interface.

Every model tunewright trains is a TaskModel, whatever its origin (HF, packaged CNN, user
factory). Strategies and PEFT methods choose parameters by name, so the names are a contract:
everything pretrained lives under ``backbone.``, everything new under ``head.``.

    features(batch) -> (B, H)   backbone + pooling
    forward(batch)  -> logits   head(features): (B, C) classification / multilabel,
                                (B,) regression, (B, T, V) causal LM (head is Identity)

Batch keys read (others, e.g. ``labels``, are ignored): text ``input_ids``/``attention_mask``
(+ ``token_type_ids`` if present), image ``pixel_values (B, 3, S, S)``, tensor ``inputs (B, ...)``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from tunewright.models.pooling import pool

MODALITIES = ("text", "image", "tensor")


def make_head(task: str, in_features: int, num_labels: Optional[int], dropout: float) -> nn.Module:
    """``Dropout(p) + Linear(H, C)``; C = 1 for regression (squeezed in forward), Identity for causal LM."""
    if task == "causal_lm":
        return nn.Identity()
    out = 1 if task == "regression" else num_labels
    if not out or out < 1:
        raise ValueError(f"task {task!r} needs num_labels >= 1, got {num_labels!r}")
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, out))


def override_dropout(module: nn.Module, p: float) -> int:
    """Set every ``nn.Dropout*.p`` and float ``*dropout*`` attribute under ``module`` to ``p``.

    The float attributes matter: HF attention modules keep ``attention_dropout`` as a float that
    ``forward`` passes to SDPA. Returns how many places changed (0 hints a model without dropout).
    """
    changed = 0
    for sub in module.modules():
        if isinstance(sub, nn.modules.dropout._DropoutNd):
            sub.p = float(p)
            changed += 1
            continue
        for key, value in list(vars(sub).items()):
            if "dropout" in key and isinstance(value, float) and not isinstance(value, bool):
                setattr(sub, key, float(p))
                changed += 1
    return changed


class TaskModel(nn.Module):
    """``backbone`` + ``head`` with the task's forward.

    ``source`` is the JSON-able recipe that rebuilds the backbone (``models/load.py``); it is what
    ``save_run_model`` writes, so a saved run reloads without the pretrained weights or a network.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, task: str, num_labels: Optional[int],
                 modality: str, pooling: Optional[str], hidden_size: Optional[int], source: dict,
                 name: str = ""):
        super().__init__()
        if modality not in MODALITIES:
            raise ValueError(f"modality {modality!r} is not one of {MODALITIES}")
        self.backbone, self.head = backbone, head
        self.task, self.num_labels, self.modality = task, num_labels, modality
        self.pooling, self.hidden_size, self.source, self.name = pooling, hidden_size, source, name

    # --- the backbone's part -------------------------------------------------------------------
    def _text_inputs(self, batch: dict) -> dict:
        kw = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if "token_type_ids" in batch:
            kw["token_type_ids"] = batch["token_type_ids"]
        return kw

    def token_states(self, batch: dict) -> torch.Tensor:
        """Last-layer token states ``(B, T, H)`` of a text backbone."""
        if self.task == "causal_lm":  # backbone is *ForCausalLM: ask for hidden states, skip the cache
            out = self.backbone(**self._text_inputs(batch), output_hidden_states=True, use_cache=False)
            return self._own_positions(out.hidden_states[-1], batch)
        return self._own_positions(self.backbone(**self._text_inputs(batch)).last_hidden_state, batch)

    @staticmethod
    def _own_positions(x: torch.Tensor, batch: dict) -> torch.Tensor:
        """``(B, n + T, ...) -> (B, T, ...)``: prompt tuning prepends n virtual tokens inside the backbone;
        the last T positions are the batch's own tokens, so ``attention_mask`` and labels line up again."""
        T = batch["input_ids"].shape[1]
        return x[:, -T:] if x.shape[1] > T else x

    def features(self, batch: dict) -> torch.Tensor:
        """One vector per example, ``(B, H)``: what the head sees (before its dropout)."""
        if self.modality == "text":
            return pool(self.token_states(batch), batch["attention_mask"], self.pooling)
        x = batch["pixel_values"] if self.modality == "image" else batch["inputs"]
        if self.source.get("type") != "hf":
            return self.backbone(x)                                   # (B, H): the module pools itself
        out = self.backbone(pixel_values=x)                           # HF vision model
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)                                  # CNNs: (B, H, 1, 1) -> (B, H)
        h = out.last_hidden_state
        return h[:, 0] if h.dim() == 3 else h.mean(dim=(-2, -1))      # ViT: CLS token; CNN maps: avg

    # --- the task's part -----------------------------------------------------------------------
    def forward(self, batch: dict) -> torch.Tensor:
        if self.task == "causal_lm":
            logits = self.backbone(**self._text_inputs(batch), use_cache=False).logits
            return self._own_positions(logits, batch)                                  # (B, T, V)
        logits = self.head(self.features(batch))                                   # (B, C)
        return logits.squeeze(-1) if self.task == "regression" else logits         # regression: (B,)

    def extra_repr(self) -> str:
        return (f"task={self.task!r}, modality={self.modality!r}, pooling={self.pooling!r}, "
                f"num_labels={self.num_labels}, name={self.name!r}")
