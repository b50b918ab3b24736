"""Frozen layers run in eval mode: `eval_frozen(model)` and its callback `FrozenEval`.

A frozen layer should compute what the pretrained model computes at inference: no dropout, and
BatchNorm with its stored statistics. In train mode a frozen BatchNorm would still update its
running statistics (buffers, not parameters), so the "frozen" backbone would drift; and dropout
would make a frozen backbone's features differ every epoch, which also rules out caching them.
Keras freezes BatchNorm the same way; fastai keeps it training (`train_bn`), which is what
`strategy_options.frozen_train_mode: true` gives.

The loop calls `model.train()` when training starts and after every evaluation, so the callback
re-applies this at the start of every epoch and after every evaluation.
"""
from __future__ import annotations

from torch import nn


def eval_frozen(model: nn.Module) -> list[str]:
    """Put `model` in train mode, then every maximal submodule whose parameters are all frozen in eval mode.

    "Maximal": a frozen block goes to eval as a whole, dropout included, but a dropout module that
    sits directly in a module that trains keeps training. Returns the names of the modules put in eval.
    """
    model.train()
    names: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
            names.append(prefix or "<root>")
            return
        for child_name, child in module.named_children():
            visit(f"{prefix}.{child_name}" if prefix else child_name, child)

    visit("", model)
    return names


class FrozenEval:
    """Keeps frozen layers in eval mode during training (see the module docstring)."""

    def __init__(self, model: nn.Module | None = None):
        self.model = model                 # None: the model fit() trains (ctx.model)

    def _apply(self, ctx) -> None:
        eval_frozen(self.model if self.model is not None else ctx.model)

    def on_epoch_start(self, ctx) -> None:
        self._apply(ctx)

    def on_evaluate(self, ctx, metrics: dict) -> None:
        self._apply(ctx)
