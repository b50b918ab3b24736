"""LoRA: a trainable low-rank update beside frozen weights (Hu et al. 2021, arXiv:2106.09685).

    h = W x + (alpha / r) * B A x        A (r, in) Kaiming-uniform, B (out, r) zero  ->  h = W x at init

Options (``lora:``): r, alpha, dropout, target_modules (``auto``), use_dora (DoRA, Liu et al. 2024,
arXiv:2402.09353: W' = m * (W + BA) / ||W + BA||), use_rslora (rsLoRA, Kalajdzievski 2023,
arXiv:2312.03732: scale alpha / sqrt(r)), lr.

Two backends, one behaviour:
- Hugging Face backbones go through peft (``LoraConfig``, ``target_modules="all-linear"`` for
  ``auto``: every linear layer except an LM's output layer; our head is outside the backbone, so
  it is never a target). Saved adapters are peft's own files.
- Any other ``nn.Module`` (EfficientNet-Lite, a user's factory) gets tunewright's ``LoraLayer``
  (layers.py), because peft's LoRA convolutions break on conv subclasses with their own padding
  and on depthwise convolutions. ``auto`` there means every ``nn.Linear`` and every ``nn.Conv*d``
  (on a CNN the convolutions are the linear maps). The files use peft's names and, for linear
  and ungrouped conv layers, peft's shapes, so ``peft.PeftModel.from_pretrained`` reads them too.

A target that matches no module is an error listing the module names there are.
"""
from __future__ import annotations

import json

from torch import nn

from ..config.schema import LoraOptions
from . import base
from .layers import LoraLayer
from .method import Method


def own_pattern(name: str) -> str:
    return rf"\.lora_(A|B|magnitude_vector)\.{name}\."


def _peft_targetable(m: nn.Module) -> bool:
    return base.linear_like(m) or isinstance(m, (nn.Embedding, nn.modules.conv._ConvNd, nn.MultiheadAttention))


def _own_targetable(m: nn.Module) -> bool:
    return isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and not isinstance(m, LoraLayer)


def peft_config(opts, targets, task_type):
    import peft
    return peft.LoraConfig(r=opts.r, lora_alpha=opts.alpha, lora_dropout=opts.dropout, target_modules=targets,
                           use_dora=opts.use_dora, use_rslora=opts.use_rslora, task_type=task_type)


def _auto(targets: list) -> bool:
    return not targets or list(targets) == ["auto"]


def apply(model, cfg):
    opts, name = cfg.lora, cfg.peft.adapter_name
    before = base.flags(model)
    if base.is_hf(model):
        targets = "all-linear" if _auto(opts.target_modules) else list(opts.target_modules)
        if targets != "all-linear":
            base.match_targets(model.backbone, targets, _peft_targetable, "lora.target_modules")
            targets = targets[0] if base.is_regex(targets) else targets   # peft: a str is a regex, a list names
        base.wrap_peft(model, peft_config(opts, targets, base.peft_task_type(model)), name)
    else:
        if _auto(opts.target_modules):
            paths = base.module_names(model.backbone, _own_targetable)
        else:
            paths = base.match_targets(model.backbone, list(opts.target_modules), _own_targetable,
                                       "lora.target_modules")
        inject(model, own_options(opts, paths), name)
    mine = base.train_only(model, cfg, own_pattern(name), before)
    return base.method_plan(model, cfg, mine, opts.lr)


def own_options(opts, paths: list[str]) -> dict:
    """What inject() needs to rebuild the layers, plus the same adapter as a peft LoraConfig (JSON)."""
    cfg = peft_config(opts, list(paths), None).to_dict()
    cfg = json.loads(json.dumps(cfg, default=lambda v: sorted(v) if isinstance(v, set) else getattr(v, "value", str(v))))
    return {"targets": list(paths), "r": opts.r, "alpha": opts.alpha, "dropout": opts.dropout,
            "use_rslora": opts.use_rslora, "use_dora": opts.use_dora, "peft_config": cfg}


def inject(model, options: dict, name: str) -> None:
    """Wrap each target of ``model.backbone`` in a LoraLayer (once) and add adapter ``name`` to it."""
    for path in options["targets"]:
        module = model.backbone.get_submodule(path)
        if not isinstance(module, LoraLayer):
            module = LoraLayer(module)
            base.replace_module(model.backbone, path, module)
        module.add_adapter(name, options["r"], options["alpha"], options["dropout"], options["use_rslora"],
                           options["use_dora"])


def saved_options(model, cfg) -> dict | None:
    """For our own layers: what load_adapter needs to rebuild them (peft adapters describe themselves)."""
    if base.is_peft(model):
        return None
    name = cfg.peft.adapter_name
    paths = [p for p, m in base.own_layers(model) if isinstance(m, LoraLayer) and name in m.adapter_names()]
    return own_options(cfg.lora, paths)


METHOD = Method("lora", apply, own_pattern, module=__name__, adapter_pattern=r"\.lora_[A-Za-z_]+\.", equal_at_init=True,
                merges=True, low_rank=True, inject=inject, saved_options=saved_options, options=LoraOptions)
