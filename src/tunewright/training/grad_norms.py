"""Gradient norms per layer group, added to the training rows as `grad_norm/<group>`.

The loop logs the global norm (`grad_norm`, before clipping). Which layers receive gradient is
what tells full fine-tuning from LoRA or a frozen prefix, so `tunewright report` draws one line
per group. Kept cheap: the per-group sums are computed only at log steps, on the last micro-batch
of the step (gradients fully accumulated, before clipping, like `grad_norm`: the groups' norms
combine to it as sqrt(sum of squares) over the trainable parameters).
"""
from __future__ import annotations

import sys

import torch


class GradNormLogger:
    """`on_after_backward` of a log step's last micro-batch (`state.log_step`, set by the loop): ||g|| per
    layer group; `on_log` adds them to the row.

    Must come before the TrackerLogger in the callback list: it edits the row in place.
    """

    def __init__(self):
        self.groups: dict[str, list[torch.nn.Parameter]] = {}
        self.pending: dict[str, float] = {}

    def on_fit_start(self, ctx) -> None:
        from ..models import layer_groups
        params = dict(ctx.model.named_parameters())
        try:
            groups = layer_groups(ctx.model)
        except Exception:  # a head over cached features or an unusual module: one group
            groups = []
        self.groups = {g.name: [params[n] for n in g.param_names if n in params and params[n].requires_grad]
                       for g in groups}
        self.groups = {k: v for k, v in self.groups.items() if v}
        if any(hasattr(p, "full_tensor") for ps in self.groups.values() for p in ps):
            # FSDP: each rank holds a slice of every gradient and this logger runs on rank 0 alone, so a
            # group's norm would need a collective the other ranks are not in. The global norm is logged.
            print("note: grad_norm/<group> is not logged under distributed.strategy: fsdp (each rank holds a "
                  "slice of every gradient); the global grad_norm is", file=sys.stderr, flush=True)
            self.groups = {}

    def on_after_backward(self, ctx) -> None:
        if not ctx.state.log_step:                             # accumulating, or a step that does not log
            return
        out = {}
        for name, ps in self.groups.items():
            sq = [p.grad.detach().float().pow(2).sum() for p in ps if p.grad is not None]
            if sq:
                out[f"grad_norm/{name}"] = float(torch.stack(sq).sum().sqrt())
        self.pending = out

    def on_nonfinite(self, ctx, loss: float, grad_norm: float) -> None:
        self.pending = {}                                      # the step was skipped; so are its norms

    def on_log(self, ctx, row: dict) -> None:
        row.update(self.pending)
        self.pending = {}
