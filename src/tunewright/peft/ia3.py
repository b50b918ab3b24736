"""(IA)^3: learned rescaling of inner activations (Liu et al. 2022, arXiv:2205.05638, T-Few).

    k' = l_k * k,   v' = l_v * v,   ffn: h' = W_out (l_ff * h)          l_* initialised to ones

Only the vectors l train (a few thousand numbers for a small model). With every l = 1 the model
is its base model, and merging multiplies them into the weights (W_k <- diag(l_k) W_k, and
W_out <- W_out diag(l_ff) for feed-forward layers, which scale their input).

Through peft (``IA3Config``) on every backbone: ``auto`` takes peft's per-architecture choice
(keys, values and the feed-forward output projection) on Hugging Face models, and every linear
and convolution layer (output-scaled) on other modules.
"""
from __future__ import annotations

from torch import nn

from ..config.schema import IA3Options
from . import base
from .method import Method


def own_pattern(name: str) -> str:
    return rf"\.ia3_l\.{name}$"


def _auto(targets) -> bool:
    return not targets or list(targets) == ["auto"]


def _targetable(m: nn.Module) -> bool:
    return isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) or base.linear_like(m)


def apply(model, cfg):
    import peft
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as KNOWN
    opts, name = cfg.ia3, cfg.peft.adapter_name
    before = base.flags(model)
    model_type = getattr(getattr(model.backbone, "config", None), "model_type", None)
    if _auto(opts.target_modules):
        if base.is_hf(model) and model_type in KNOWN:
            targets, ff = None, None                         # peft's defaults for this architecture
        else:
            targets, ff = base.module_names(model.backbone, _targetable), []
    else:
        targets = list(opts.target_modules)
        base.match_targets(model.backbone, targets, _targetable, "ia3.target_modules")
        ff = [] if _auto(opts.feedforward_modules) else list(opts.feedforward_modules)
        if ff:
            base.match_targets(model.backbone, ff, _targetable, "ia3.feedforward_modules")
    config = peft.IA3Config(task_type=base.peft_task_type(model), target_modules=targets, feedforward_modules=ff)
    base.wrap_peft(model, config, name)
    mine = base.train_only(model, cfg, own_pattern(name), before)
    return base.method_plan(model, cfg, mine, opts.lr)


METHOD = Method("ia3", apply, own_pattern, module=__name__, adapter_pattern=r"\.ia3_l\.", equal_at_init=True,
                merges=True, options=IA3Options)
