"""`DomainAlignment`: the `on_loss` wrapper that turns `fit()` on source data into DANN, CORAL or MMD.

Each step it draws one unlabeled target batch, takes the source features the head just saw (a
forward pre-hook on `model.head` records them) and the target features (`model.features(batch)`),
and adds weight * alignment(source, target) to the loss:

    dann:  BCE(D(R(f_s)), 0) + BCE(D(R(f_t)), 1), R = grad_reverse with lambda_p (Ganin et al. 2016)
    coral: coral_loss(f_s, f_t)        (Sun & Saenko 2016)
    mmd:   mmd(f_s, f_t)               (Long et al. 2015)

DANN's domain classifier D belongs to the callback, with its own Adam, stepped together with the
model's optimizer.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .core import coral_loss, dann_lambda, grad_reverse, mmd

METHODS = ("source_only", "dann", "coral", "mmd")


class DomainAlignment:
    def __init__(self, method: str, target_batches: Callable[[], Iterator[dict]], weight: float = 1.0,
                 feature_dim: int | None = None, disc_hidden: int = 256, disc_lr: float = 1e-3,
                 gamma: float = 10.0):
        if method not in METHODS:
            raise ValueError(f"domain.method: {method!r} is not one of {METHODS}")
        self.method, self.weight, self.gamma = method, weight, gamma
        self.target_batches, self._it, self._source, self._hook = target_batches, None, None, None
        self.disc = self.disc_opt = None
        if method == "dann":
            self.disc = nn.Sequential(nn.Linear(feature_dim, disc_hidden), nn.ReLU(), nn.Linear(disc_hidden, 1))
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=disc_lr)
        self.last = {}

    def _next_target(self) -> dict:
        try:
            return next(self._it)
        except (StopIteration, TypeError):
            self._it = iter(self.target_batches())
            return next(self._it)

    def on_fit_start(self, ctx) -> None:
        def record(_module, args):
            self._source = args[0]
        self._hook = ctx.model.head.register_forward_pre_hook(record)

    def on_fit_end(self, ctx) -> None:
        if self._hook is not None:
            self._hook.remove()

    def on_loss(self, ctx, loss, batch):
        if self.method == "source_only":
            return loss
        fs = self._source                                               # (B, H), from this step's forward
        ft = ctx.model.features(self._next_target())                    # (B_t, H)
        if self.method == "coral":
            extra = coral_loss(fs, ft)
        elif self.method == "mmd":
            extra = mmd(fs, ft)
        else:
            progress = ctx.state.step / max(ctx.state.total_steps, 1)
            lam = dann_lambda(progress, self.gamma)
            f = grad_reverse(torch.cat([fs, ft]), lam)
            d = torch.cat([torch.zeros(len(fs)), torch.ones(len(ft))]).to(f.device)
            extra = F.binary_cross_entropy_with_logits(self.disc(f).squeeze(-1), d)
        self.last = {"align": float(extra.detach())}
        return loss + self.weight * extra

    def on_before_optimizer_step(self, ctx) -> None:
        if self.disc_opt is not None:
            self.disc_opt.step()
            self.disc_opt.zero_grad(set_to_none=True)
