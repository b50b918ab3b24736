"""The drivers' models over tensor examples (multitask/, continual/, meta/, domain/): an encoder from a
factory, and `EncoderHead`, which gives it a head and the TaskModel contract (`features`, `forward`)."""
from __future__ import annotations

from typing import Optional

import torch

from .backbones import import_factory


class EncoderHead(torch.nn.Module):
    """`encoder` (batch["inputs"] -> (B, H)) + `head`: the TaskModel contract (`features`, `forward`)
    for the drivers' tensor examples."""

    def __init__(self, encoder: torch.nn.Module, head: torch.nn.Module):
        super().__init__()
        self.backbone, self.head = encoder, head

    def features(self, batch: dict) -> torch.Tensor:
        return self.backbone(batch["inputs"])

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.features(batch))


def build_encoder(cfg, in_features: Optional[int] = None) -> torch.nn.Module:
    """The drivers' encoder: a `package.module:function` factory from `model.name` (default
    `tunewright.zoo:small_cnn`), called with `model.factory_kwargs` (and `in_features` when given)."""
    name = cfg.model.name if ":" in cfg.model.name else "tunewright.zoo:small_cnn"
    kwargs = dict(cfg.model.factory_kwargs)
    if in_features is not None:
        kwargs.setdefault("in_features", in_features)
    return import_factory(name)(**kwargs)
