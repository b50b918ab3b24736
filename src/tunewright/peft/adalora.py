"""AdaLoRA: LoRA whose rank budget moves to the layers that matter (Zhang et al. 2023, arXiv:2303.10512).

    h = W x + (alpha / r) * P diag(lambda) Q x        P (out, r), lambda (r,), Q (r, in); lambda = 0 at init

Every ``delta_t`` steps the triplets (P_i, lambda_i, Q_i) are scored by a smoothed sensitivity
|w * grad w| times its uncertainty, and the lowest-scoring are masked until the total rank falls,
on a cubic schedule, from ``init_r`` to ``target_r`` per layer: full rank for the first ``tinit``
share of the steps, pruning in between, fixed ranks for the last ``tfinal`` share. An
orthogonality penalty ``orth_reg_weight * mean ||P^T P - I||_F`` keeps P and Q near orthogonal.

peft holds the layers and the rank allocator. What peft leaves to the user's own loop is done
here by ``AdaLoraBudget``, a callback: it sets the run's real step count on ``on_fit_start``, adds
the penalty on ``on_loss`` (peft adds it only when the backbone computes the loss itself, which a
TaskModel's never does), and calls ``update_and_allocate(step)`` on ``on_after_optimizer_step``:
after ``optimizer.step()`` and before ``zero_grad()``, with the 0-based index of that step, as
peft's docs ask. The user never calls it. Its scores go into checkpoints, so a resumed run prunes
exactly as an uninterrupted one.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from . import base
from ..config.schema import AdaLoraOptions
from .method import Method


def own_pattern(name: str) -> str:
    return rf"\.lora_[ABE]\.{name}$"


def apply(model, cfg):
    import peft
    opts, name = cfg.adalora, cfg.peft.adapter_name
    if not 0 <= opts.tinit < 1 or not 0 <= opts.tfinal < 1 or opts.tinit + opts.tfinal >= 1:
        raise ConfigError(f"adalora.tinit={opts.tinit} and adalora.tfinal={opts.tfinal}: each is a share of the "
                          f"run's steps in [0, 1), and together they must leave steps for pruning (sum < 1).")
    if opts.target_r > opts.init_r:
        raise ConfigError(f"adalora.target_r={opts.target_r} must not exceed adalora.init_r={opts.init_r}.")
    before = base.flags(model)
    auto = not opts.target_modules or list(opts.target_modules) == ["auto"]
    linear = lambda m: isinstance(m, nn.Linear)  # noqa: E731 - peft's AdaLoRA adapts nn.Linear only
    if auto:
        targets = "all-linear" if base.is_hf(model) else base.module_names(model.backbone, linear)
        if not targets:
            raise ConfigError(f"method: adalora adapts linear layers, and {model.name!r} has none in its backbone "
                              f"(use method: lora, which also adapts convolutions).")
    else:
        targets = list(opts.target_modules)
        base.match_targets(model.backbone, targets, linear, "adalora.target_modules")
        targets = targets[0] if base.is_regex(targets) else targets
    # total_step is not known until the loop starts; AdaLoraBudget.on_fit_start sets the real one.
    config = peft.AdaLoraConfig(init_r=opts.init_r, target_r=opts.target_r, lora_alpha=opts.alpha,
                                lora_dropout=opts.dropout, target_modules=targets, tinit=0, tfinal=0,
                                deltaT=opts.delta_t, beta1=opts.beta1, beta2=opts.beta2,
                                orth_reg_weight=opts.orth_reg_weight, total_step=1000,
                                task_type=base.peft_task_type(model))
    base.wrap_peft(model, config, name)
    mine = base.train_only(model, cfg, own_pattern(name), before)
    budget = AdaLoraBudget(name, opts.tinit, opts.tfinal, opts.orth_reg_weight).bind(model)
    return base.method_plan(model, cfg, mine, opts.lr, [budget])


def orthogonality_penalty(model: nn.Module, name: str) -> torch.Tensor:
    """mean over P and Q matrices of ||P P^T - I||_F (Q: rows) and ||Q^T Q - I||_F, as peft computes it."""
    total, count = None, 0
    for n, p in model.named_parameters():
        if (f"lora_A.{name}" in n or f"lora_B.{name}" in n) and p.requires_grad:
            cov = p @ p.T if "lora_A" in n else p.T @ p                  # (r, r)
            eye = torch.eye(cov.shape[0], device=cov.device, dtype=cov.dtype)
            term = torch.linalg.matrix_norm(cov - eye)
            total, count = (term if total is None else total + term), count + 1
    return total / count if count else torch.zeros(())


class AdaLoraBudget:
    """AdaLoRA's schedule as a callback: the loop never learns its name."""

    def __init__(self, adapter: str, tinit: float, tfinal: float, orth_reg_weight: float):
        self.adapter, self.tinit, self.tfinal, self.orth_reg_weight = adapter, tinit, tfinal, orth_reg_weight

    def _tuner(self, ctx):
        return ctx.model.backbone.base_model                               # peft's AdaLoraModel

    def on_fit_start(self, ctx) -> None:
        total = ctx.state.total_steps
        config = ctx.model.backbone.peft_config[self.adapter]          # the object the rank allocator reads
        config.total_step = total
        config.tinit, config.tfinal = int(self.tinit * total), int(self.tfinal * total)
        if config.tinit >= total - config.tfinal:
            raise ConfigError(f"adalora: a run of {total} steps leaves no pruning phase with tinit={self.tinit} and "
                              f"tfinal={self.tfinal}; train longer or lower them.")

    def on_loss(self, ctx, loss, batch):
        if not self.orth_reg_weight:
            return None
        return loss + self.orth_reg_weight * orthogonality_penalty(ctx.model, self.adapter)

    def on_after_optimizer_step(self, ctx) -> None:
        self._tuner(ctx).update_and_allocate(ctx.state.step)           # state.step: index of the step just taken

    # Scores and the rank pattern go into checkpoints, so a resumed run allocates exactly as before.
    def state_dict(self) -> dict:
        alloc = self._alloc
        return {"ipt": dict(alloc.ipt), "exp_avg_ipt": dict(alloc.exp_avg_ipt),
                "exp_avg_unc": dict(alloc.exp_avg_unc), "rank_pattern": self._config.rank_pattern}

    def load_state_dict(self, state: dict) -> None:
        alloc = self._alloc
        alloc.ipt, alloc.exp_avg_ipt, alloc.exp_avg_unc = (dict(state[k]) for k in ("ipt", "exp_avg_ipt",
                                                                                       "exp_avg_unc"))
        self._config.rank_pattern = state.get("rank_pattern")

    def bind(self, model) -> "AdaLoraBudget":
        """Remember the model whose allocator state_dict() reads (checkpoints call it outside events)."""
        self._alloc = model.backbone.base_model.rankallocator
        self._config = model.backbone.peft_config[self.adapter]
        return self


def restore_config(config, saved: dict) -> None:
    """Before peft loads saved weights back (restore_saved): the file holds the ranks of the step it was
    saved at; later budget steps changed the model's pattern, and peft resizes the layers by the model's
    pattern before loading."""
    if saved.get("rank_pattern") and hasattr(config, "rank_pattern"):
        config.rank_pattern = saved["rank_pattern"]


# ranknum: peft's per-layer rank count, added but never trained.
METHOD = Method("adalora", apply, own_pattern, module=__name__, adapter_pattern=r"\.lora_[A-Za-z_]+\.|\.ranknum\.",
                equal_at_init=True, merges=True, low_rank=True, restore_config=restore_config, options=AdaLoraOptions)
