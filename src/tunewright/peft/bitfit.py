"""BitFit: train only the bias terms of the pretrained network (Ben Zaken et al. 2022, arXiv:2106.10199).

    y = W x + b        W frozen, b trains          (plus the head, with peft.train_head)

About 0.1% of a BERT's parameters. Nothing is added, so the model equals its base at the start
and there is nothing to merge: the trained biases ARE the base's biases. The saved "adapter" is
the set of trained biases (peft's file names, our own config); loading it overwrites the base's
biases, so one model holds one BitFit adapter at a time. Models without biases (Llama: no
attention or MLP biases) have nothing for BitFit to train, which is an error.
"""
from __future__ import annotations

from ..config.schema import BitFitOptions
from ..errors import ConfigError, MethodError
from . import base
from .method import Method


def own_pattern(name: str) -> str:
    return r"^backbone\.(.*\.)?bias$"


def apply(model, cfg):
    before = base.flags(model)
    if not any(n.endswith("bias") for n, _ in model.backbone.named_parameters()):
        raise ConfigError(f"method: bitfit trains bias terms, and {model.name!r} ({type(model.backbone).__name__}) "
                          f"has none. Use lora, ia3 or adapter.")
    inject(model, {}, cfg.peft.adapter_name)
    mine = base.train_only(model, cfg, own_pattern(cfg.peft.adapter_name), before)
    return base.method_plan(model, cfg, mine, cfg.bitfit.lr)


def held(model) -> list[str]:
    """The BitFit adapter this model holds (at most one). There are no adapter layers to hold its name, so
    it is kept beside the model (base.beside: not in its state dict, copied with it)."""
    return base.beside(model, "bitfit", list)


def inject(model, options: dict, name: str) -> None:
    held_names = held(model)
    if held_names and name not in held_names:
        raise MethodError(f"BitFit trains the base's own biases: this model already holds BitFit adapter "
                          f"{held_names[0]!r}, and loading {name!r} would overwrite it. Load it on a fresh base "
                          f"model.")
    held_names[:] = [name]


def saved_options(model, cfg) -> dict:
    return {}


# Nothing is added (adapter_pattern None): the trained biases are the base's own, and "merging" changes nothing.
METHOD = Method("bitfit", apply, own_pattern, module=__name__, adapter_pattern=None, equal_at_init=True, merges=True,
                inject=inject, saved_options=saved_options, adapter_names=lambda model: list(held(model)), options=BitFitOptions)
