"""L2-SP: regularise toward the starting point (Li, Grandvalet & Davoine 2018, "Explicit Inductive
Bias for Transfer Learning with Convolutional Networks", eq. 3):

    Omega(w) = alpha/2 * ||w_S - w0_S||^2  +  beta/2 * ||w_new||^2

S are the pretrained parameters that train, w0_S their pretrained values, w_new the new head's
weights. Plain weight decay pulls pretrained weights toward zero, i.e. away from what was learned;
L2-SP pulls them back toward it, against catastrophic forgetting. (AdamW's decoupled decay still
applies as `train.weight_decay` says; set it to 0 for the paper's exact objective.)

The anchor w0 is copied when the run is planned, before any training and before a checkpoint is
loaded, so a resumed run anchors to the pretrained weights too. Parameters are tracked by
identity, not name, so a PEFT method that renames a module afterwards does not break the pairing.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def l2sp_penalty(pairs: Sequence[tuple[nn.Parameter, torch.Tensor]], new: Sequence[nn.Parameter],
                 alpha: float, beta: float) -> torch.Tensor:
    """alpha/2 * sum ||w - w0||^2 over `pairs` + beta/2 * sum ||w||^2 over `new`; frozen ones are skipped."""
    total = None
    for p, p0 in pairs:
        if p.requires_grad:
            term = alpha / 2 * (p - p0).pow(2).sum()
            total = term if total is None else total + term
    for p in new:
        if p.requires_grad:
            term = beta / 2 * p.pow(2).sum()
            total = term if total is None else total + term
    return total if total is not None else torch.zeros(())


class L2SP:
    """Adds the L2-SP penalty to the loss (the loop's `on_loss` event)."""

    def __init__(self, model: nn.Module, head_names: set[str], alpha: float, beta: float):
        self.alpha, self.beta = alpha, beta
        self.pairs = [(p, p.detach().clone()) for n, p in model.named_parameters()
                      if n not in head_names and p.requires_grad] if alpha else []
        # Weights only, as in the paper: biases of the new layer are not penalised.
        self.new = [p for n, p in model.named_parameters() if n in head_names and p.dim() > 1] if beta else []

    def on_fit_start(self, ctx) -> None:
        self.pairs = [(p, p0.to(p.device)) for p, p0 in self.pairs]   # the model may have moved to a GPU

    def on_loss(self, ctx, loss: torch.Tensor, batch: dict) -> torch.Tensor:
        return loss + l2sp_penalty(self.pairs, self.new, self.alpha, self.beta).to(loss.device)
