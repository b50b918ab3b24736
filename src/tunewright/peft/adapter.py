"""Bottleneck adapters: small residual MLPs inserted into a frozen network.

    a(h) = h + W_up f(W_down h)       W_down (H/rf, H), W_up (H, H/rf) = 0 at init  ->  a(h) = h

- Houlsby (Houlsby et al. 2019, arXiv:1902.00751): one adapter after the attention output
  projection and one after the feed-forward output projection of every transformer layer, each
  before its residual add and LayerNorm (the dropout after the projection follows the adapter).
- Pfeiffer (Pfeiffer et al. 2021, arXiv:2005.00247): after the feed-forward block only; half
  the parameters, usually the same accuracy.

``adapter.reduction_factor`` sets H/rf and ``adapter.activation`` f. Inserted into Hugging Face
encoders and causal LMs (attention / feed-forward outputs found by name), after every block of
EfficientNet-Lite (on the channel axis of the feature map), and after every linear/conv layer of
other modules; ``adapter.target_modules`` names other places. Adapters are non-linear, so they
cannot be merged into the weights.

Why our own code rather than AdapterHub's ``adapters`` package: it pins transformers 4.57 and
breaks datasets 5.x (ASSETS.md), and it patches model classes; an ``AdapterLayer`` (layers.py)
wraps one module and works on any nn.Module. Saved adapters use peft's file names with our
own config (peft has no bottleneck adapters to load them into).
"""
from __future__ import annotations

import re

from torch import nn

from ..config.schema import AdapterOptions
from ..errors import ConfigError
from . import base
from .layers import AdapterLayer, LoraLayer
from .method import Method

# Output projections by architecture family: BERT/RoBERTa/MiniLM, Llama/Mistral/Qwen, GPT-2, DistilBERT, others.
ATTN_OUT = re.compile(r"(attention\.output\.dense|self_attn\.o_proj|attn\.c_proj|attention\.out_lin|"
                      r"attn\.out_proj|self_attention\.dense|attn\.o_proj)$")
FFN_OUT = re.compile(r"((?<!attention\.)output\.dense|mlp\.down_proj|mlp\.c_proj|ffn\.lin2|mlp\.fc2|"
                     r"mlp\.dense_4h_to_h|feed_forward\.w2)$")
EFFICIENTNET_BLOCK = re.compile(r"_blocks\.\d+$")


def own_pattern(name: str) -> str:
    return rf"\.adapter\.{name}\."


def _leaf(m: nn.Module) -> bool:
    return isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) or base.linear_like(m)


def _width(module: nn.Module) -> tuple[int, int]:
    """(features, axis) of what ``module`` returns: its own, or its last linear/conv layer's."""
    last = module if _leaf(module) else [m for m in module.modules() if _leaf(m)][-1]
    if isinstance(last, nn.modules.conv._ConvNd):
        return last.out_channels, 1
    if isinstance(last, nn.Linear):
        return last.out_features, -1
    return last.nf, -1                                                     # transformers' Conv1D


def auto_targets(model, kind: str) -> list[str]:
    backbone = model.backbone
    names = [n for n, _ in backbone.named_modules() if n]
    if base.is_hf(model):
        rules = [FFN_OUT] if kind == "pfeiffer" else [ATTN_OUT, FFN_OUT]
        found = [n for n in names if any(r.search(n) for r in rules)]
        if not found:
            raise ConfigError(f"adapter: no attention/feed-forward output projection found by name in "
                              f"{type(backbone).__name__}; name them with adapter.target_modules.")
        return found
    if model.source.get("type") == "efficientnet":
        return [n for n in names if EFFICIENTNET_BLOCK.search(n)]
    return [n for n in names if _leaf(backbone.get_submodule(n))]


def apply(model, cfg):
    opts, name = cfg.adapter, cfg.peft.adapter_name
    before = base.flags(model)
    if not opts.target_modules or list(opts.target_modules) == ["auto"]:
        paths = auto_targets(model, opts.kind)
    else:
        paths = base.match_targets(model.backbone, list(opts.target_modules), lambda m: True,
                                   "adapter.target_modules")
    inject(model, options(model, opts, paths), name)
    mine = base.train_only(model, cfg, own_pattern(name), before)
    return base.method_plan(model, cfg, mine, opts.lr)


def options(model, opts, paths: list[str]) -> dict:
    targets = []
    for path in paths:
        module = model.backbone.get_submodule(path)
        inner = module.base_layer if isinstance(module, (AdapterLayer, LoraLayer)) else module
        dim, axis = _width(inner)
        targets.append({"path": path, "dim": dim, "channel_dim": axis})
    return {"kind": opts.kind, "reduction_factor": opts.reduction_factor, "activation": opts.activation,
            "targets": targets}


def inject(model, options: dict, name: str) -> None:
    for t in options["targets"]:
        module = model.backbone.get_submodule(t["path"])
        if not isinstance(module, AdapterLayer):
            module = AdapterLayer(module)
            base.replace_module(model.backbone, t["path"], module)
        module.add_adapter(name, t["dim"], options["reduction_factor"], options["activation"], t["channel_dim"])


def saved_options(model, cfg) -> dict:
    name = cfg.peft.adapter_name
    paths = [p for p, m in base.own_layers(model) if isinstance(m, AdapterLayer) and name in m.adapter_names()]
    return options(model, cfg.adapter, paths)


METHOD = Method("adapter", apply, own_pattern, module=__name__, adapter_pattern=r"\.adapter\.", equal_at_init=True,
                merges=False, inject=inject, saved_options=saved_options, options=AdapterOptions)      # non-linear: cannot be merged
