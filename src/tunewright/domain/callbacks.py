"""`DomainAlignment`: the `fit()` callback that turns training on source data into DANN, CORAL or MMD.

Each step it draws one unlabeled target batch, takes the source features the head just saw (a
forward pre-hook on `model.head` records them) and the target features (`model.features(batch)`),
and adds weight * method.loss(source, target, progress) to the loss (methods.py: one object per
method, each with its formula). A method that does not align (source_only) adds nothing and draws
no target batch.
"""
from __future__ import annotations

from typing import Callable, Iterator

from .methods import DomainSettings, method_class


class DomainAlignment:
    def __init__(self, method, target_batches: Callable[[], Iterator[dict]], weight: float = 1.0,
                 feature_dim: int | None = None, disc_hidden: int = 256, disc_lr: float = 1e-3,
                 gamma: float = 10.0):
        """`method`: a name of `methods.METHODS` (built with the other arguments) or a method object."""
        if isinstance(method, str):
            method = method_class(method).build(DomainSettings(feature_dim, gamma, disc_hidden, disc_lr))
        self.method, self.weight = method, weight
        self.target_batches, self._it, self._source, self._hook = target_batches, None, None, None
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
        if not self.method.aligns:
            return loss
        fs = self._source                                               # (B, H), from this step's forward
        ft = ctx.model.features(self._next_target())                    # (B_t, H)
        extra = self.method.loss(fs, ft, ctx.state.step / max(ctx.state.total_steps, 1))
        self.last = {"align": float(extra.detach())}
        return loss + self.weight * extra

    def on_before_optimizer_step(self, ctx) -> None:
        step = getattr(self.method, "on_before_optimizer_step", None)   # DANN: its discriminator's Adam
        if step is not None:
            step()
