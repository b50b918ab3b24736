"""Gradual unfreezing (ULMFiT, Howard & Ruder 2018, sec. 3.3) and progressive unfreezing (vision).

Training starts with only the head; then one more layer group unfreezes at a time, from the top
down, so the general features of the lower layers are not wrecked while the new head is still
random. The function comes first, the callback is a thin wrapper:

    unfreeze_top(model, index, k)          # the top k groups train, the rest is frozen

How it works with the optimizer and the LR schedule: every parameter that will ever train is in
the optimizer from step 0 (one param group per layer group, scale and decay: never one parameter
in two groups). A frozen parameter has `requires_grad=False`, so it gets no gradient, and AdamW
and SGD skip parameters without a gradient: no moment update and no weight decay. The LR
scheduler moves every group's LR every step, frozen or not, so a group that unfreezes at step t
trains at exactly its scheduled LR for step t. Nothing is added to the optimizer mid-run, which
is what keeps checkpoints loadable (adding param groups on unfreezing is what breaks resume in
Lightning's BaseFinetuning, issues #6891, #8502).

Resume: the callback's state (how many groups are unfrozen) is saved in every checkpoint and
applied again when a resumed run starts, so groups unfrozen before the interruption stay
unfrozen (Lightning re-freezes them, issue #21901).

When a group unfreezes:
- `every`: at the start of epoch e, 1 + e // every groups train (the ULMFiT default: every = 1);
- `at`: explicit epochs, `at[i]` is the epoch at which group i + 2 from the top unfreezes;
- `on_plateau`: one more group after `patience` evaluations without improvement of the
  monitored validation metric.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from torch import nn

from .groups import GroupIndex


def unfreeze_top(model: nn.Module, index: GroupIndex, k: int, allowed: Optional[set[str]] = None) -> list[str]:
    """Let the top `k` layer groups train and freeze the others; return the names of the training groups.

    `allowed`: the parameters the strategy and the PEFT method let train at all (None: every one).
    A parameter outside it stays frozen whatever its group.
    """
    k = max(1, min(k, len(index.order)))
    training = index.order[len(index.order) - k:]
    on = set(training)
    for name, p in model.named_parameters():
        p.requires_grad_(index(name) in on and (allowed is None or name in allowed))
    return training


class GradualUnfreezing:
    """Unfreezes one more layer group at a time; see the module docstring for the schedule."""

    def __init__(self, model: nn.Module, index: GroupIndex, *, every: int = 1, at: Sequence[int] = (),
                 on_plateau: bool = False, patience: int = 1, log=None):
        self.model, self.index = model, index
        self.every, self.at, self.on_plateau, self.patience = every, list(at), on_plateau, patience
        self.unfrozen = 1                  # groups training now, counted from the top (the head is 1)
        self.bad = 0                       # evaluations without improvement (plateau mode)
        self.allowed: Optional[set[str]] = None
        self.log = log or (lambda message: print(f"note: {message}", file=sys.stderr, flush=True))

    def scheduled(self, epoch: int) -> int:
        """Groups unfrozen at the start of `epoch` under an epoch schedule (not plateau mode)."""
        if self.at:
            return 1 + sum(1 for e in self.at if e <= epoch)
        return 1 + epoch // self.every

    def unfreeze_epochs(self) -> dict[str, Optional[int]]:
        """group -> the epoch it starts training (None: on a plateau, or never in a schedule)."""
        out: dict[str, Optional[int]] = {}
        for depth, group in enumerate(reversed(self.index.order)):
            if depth == 0:
                out[group] = 0
            elif self.on_plateau:
                out[group] = None
            elif self.at:
                out[group] = self.at[depth - 1] if depth - 1 < len(self.at) else None
            else:
                out[group] = depth * self.every
        return out

    def _apply(self) -> None:
        training = unfreeze_top(self.model, self.index, self.unfrozen, self.allowed)
        self.unfrozen = len(training)

    def start(self) -> None:
        """The state at step 0: the head alone (or what a resumed checkpoint had unfrozen).
        What may train at all is what the strategy and the method left trainable; the optimizer
        was built from exactly that set, so unfreezing never needs a new param group."""
        if self.allowed is None:
            self.allowed = {n for n, p in self.model.named_parameters() if p.requires_grad}
        self._apply()

    def on_fit_start(self, ctx) -> None:
        self.start()

    def on_epoch_start(self, ctx) -> None:
        if not self.on_plateau:
            before = self.unfrozen
            self.unfrozen = max(self.unfrozen, self.scheduled(ctx.state.epoch))
            self._apply()
            if self.unfrozen != before:
                self.log(f"epoch {ctx.state.epoch}: unfrozen {self.training_groups()}")

    def on_evaluate(self, ctx, metrics: dict) -> None:
        if not self.on_plateau:
            return
        self.bad = 0 if ctx.state.improved else self.bad + 1
        if self.bad >= self.patience and self.unfrozen < len(self.index.order):
            self.unfrozen += 1
            self.bad = 0
            self._apply()
            self.log(f"step {ctx.state.step}: validation plateaued; unfrozen {self.training_groups()}")

    def training_groups(self) -> list[str]:
        return self.index.order[len(self.index.order) - self.unfrozen:]

    def state_dict(self) -> dict:
        return {"unfrozen": self.unfrozen, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.unfrozen, self.bad = int(state["unfrozen"]), int(state["bad"])
