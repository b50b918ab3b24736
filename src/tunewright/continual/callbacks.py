"""`fit()` wrappers of the continual methods: penalties via `on_loss`, replay via `on_batch_start`."""
from __future__ import annotations

from typing import Callable

import torch

from .core import Reservoir, ewc_penalty, lwf_loss


class EWC:
    """Adds lambda/2 * sum_i F_i (w_i - w*_i)^2 (core.ewc_penalty) to every loss. With several anchors
    (plain EWC keeps one per past task) the penalties add up."""

    def __init__(self, anchors: list[tuple[dict, dict]], lam: float):
        self.anchors, self.lam = anchors, lam          # [(anchor weights, fisher), ...]

    def on_loss(self, ctx, loss, batch):
        if not self.anchors:
            return loss
        params = dict(ctx.model.named_parameters())
        return loss + self.lam / 2 * sum(ewc_penalty(params, a, f) for a, f in self.anchors)


class Replay:
    """Experience replay (Chaudhry et al. 2019, "On Tiny Episodic Memories"): `k` stored examples are
    appended to every training batch, then the batch's own examples are offered to the reservoir
    (first epoch of a task only, so that each example of the stream is offered once)."""

    def __init__(self, buffer: Reservoir, k: int, collate: Callable):
        self.buffer, self.k, self.collate = buffer, k, collate

    def on_batch_start(self, ctx, batch: dict) -> None:
        n = len(batch["labels"])
        new = [{k: v[i].cpu() for k, v in batch.items()} for i in range(n)]
        old = self.buffer.sample(self.k)
        if old:
            mixed = self.collate(old)
            for key in batch:
                batch[key] = torch.cat([batch[key], mixed[key].to(batch[key].device)])
        if ctx.state.epoch == 0:
            for item in new:
                self.buffer.add(item)

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        self.buffer.load_state_dict(d["buffer"])


class LwF:
    """Learning without Forgetting: distil the frozen previous model's outputs on the old tasks' classes."""

    def __init__(self, old_model: torch.nn.Module, old_classes: list[int], alpha: float, temperature: float):
        self.old, self.cls, self.alpha, self.t = old_model.eval(), torch.tensor(old_classes), alpha, temperature
        for p in self.old.parameters():
            p.requires_grad_(False)

    def on_loss(self, ctx, loss, batch):
        if len(self.cls) == 0:
            return loss
        with torch.no_grad():
            old = self.old.all_logits(batch)[:, self.cls]          # (B, C_old)
        new = ctx.model.last_all_logits[:, self.cls]                # this step's forward, unmasked
        return loss + self.alpha * lwf_loss(new, old, self.t)
