"""Token states -> one vector per example, and how `pooling: auto` picks the mode.

Padding must never leak into the pooled vector: every mode uses ``attention_mask`` (1 = real
token), and works for right and left padding alike.

- ``cls``:  the first token's state (BERT's [CLS]);
- ``mean``: sum of real-token states / number of real tokens (sentence-transformers' default);
- ``max``:  per-dimension max over real tokens;
- ``last``: the state of the last real token (decoder-only models: the only token that saw all others).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import torch

MODES = ("cls", "mean", "max", "last")

# sentence-transformers 1_Pooling/config.json flag -> our mode. mean_sqrt_len and weightedmean are
# close cousins of mean; we map them to mean rather than re-implementing their weighting.
_ST_FLAGS = [
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_lasttoken", "last"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean"),
    ("pooling_mode_weightedmean_tokens", "mean"),
]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """``hidden (B, T, H)``, ``attention_mask (B, T)`` -> ``(B, H)``."""
    mask = attention_mask.to(torch.bool).unsqueeze(-1)                   # (B, T, 1)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        summed = (hidden * mask).sum(dim=1)                              # (B, H)
        count = mask.sum(dim=1).clamp(min=1).to(hidden.dtype)            # (B, 1)
        return summed / count
    if mode == "max":
        lowest = torch.finfo(hidden.dtype).min                           # not -inf: an all-pad row stays finite
        return hidden.masked_fill(~mask, lowest).max(dim=1).values
    if mode == "last":
        T = hidden.shape[1]
        positions = torch.arange(T, device=hidden.device).expand_as(attention_mask)  # (B, T)
        last = (positions * attention_mask.to(positions.dtype)).argmax(dim=1)        # (B,) last real index
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"pooling {mode!r} is not one of {MODES}")


def sentence_transformers_pooling(read: Callable[[str], Optional[str]]) -> Optional[str]:
    """The pooling a sentence-transformers folder declares, or None if it is not one.

    ``read(relpath)`` returns a file's text or None (a local folder or the HF cache). The folder's
    ``modules.json`` lists its modules; the ``...Pooling`` module's ``config.json`` holds the flags.
    """
    modules = read("modules.json")
    if not modules:
        return None
    try:
        entries = json.loads(modules)
    except ValueError:
        return None
    for entry in entries:
        if str(entry.get("type", "")).endswith("Pooling"):
            text = read(str(Path(entry.get("path", "")) / "config.json"))
            flags = json.loads(text) if text else {}
            for flag, mode in _ST_FLAGS:
                if flags.get(flag):
                    return mode
    return None


def default_pooling(config) -> str:
    """Without a sentence-transformers config: decoder-only models -> last, encoders -> cls."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    model_type = getattr(config, "model_type", "")
    decoder_only = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    return "last" if decoder_only and not getattr(config, "is_encoder_decoder", False) else "cls"
