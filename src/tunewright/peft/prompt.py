"""Prompt tuning and prefix tuning: trainable vectors in front of a frozen transformer.

Prompt tuning (Lester et al. 2021, arXiv:2104.08691): n soft-prompt embeddings P (n, H) are
prepended to the input embeddings, ``[P; E(x)]`` of length n + T, and only P trains.

Prefix tuning (Li & Liang 2021, arXiv:2101.00190): n trainable key and value vectors are
prepended in every attention layer, ``attn(q, [P_k; K], [P_v; V])``; optionally produced by a
2-layer MLP during training (``prefix_tuning.projection``), which stabilises optimisation.

Both go through peft (``PromptTuningConfig`` / ``PrefixTuningConfig``) on Hugging Face text
transformers only: they need token embeddings and attention. peft extends the attention mask
by n ones for both; for prompt tuning it also returns n extra leading positions, which
``TaskModel`` drops (it keeps the last T positions, the batch's own tokens), so pooling, the
classification head and the causal-LM labels line up with the batch as they do without a method.
Neither starts equal to the base model (the virtual tokens change every output), and neither
can be merged into the weights.
"""
from __future__ import annotations

from ..errors import ConfigError
from . import base

MODULE = "tunewright.peft.prompt"


def own_pattern(name: str) -> str:
    return rf"^backbone\.prompt_encoder\.{name}\."


def _check(model, method: str) -> None:
    if not (base.is_hf(model) and model.modality == "text"):
        raise ConfigError(f"method: {method} needs a Hugging Face text transformer (it adds tokens or attention "
                          f"keys); {model.name!r} is a {model.source.get('type')} {model.modality} model. "
                          f"Use lora, adapter, ia3 or bitfit there.")


def apply_prompt(model, cfg):
    import peft
    _check(model, "prompt_tuning")
    opts, name = cfg.prompt_tuning, cfg.peft.adapter_name
    kw = {}
    if opts.init_text:
        kw = {"prompt_tuning_init": peft.PromptTuningInit.TEXT, "prompt_tuning_init_text": opts.init_text,
              "tokenizer_name_or_path": model.source["name_or_path"]}
    before = base.flags(model)
    base.wrap_peft(model, peft.PromptTuningConfig(task_type=base.peft_task_type(model),
                                                  num_virtual_tokens=opts.num_virtual_tokens, **kw), name)
    mine = base.train_only(model, cfg, own_pattern(name), before)
    return base.method_plan(model, cfg, mine, opts.lr)


def apply_prefix(model, cfg):
    import peft
    _check(model, "prefix_tuning")
    opts, name = cfg.prefix_tuning, cfg.peft.adapter_name
    before = base.flags(model)
    base.wrap_peft(model, peft.PrefixTuningConfig(task_type=base.peft_task_type(model),
                                                  num_virtual_tokens=opts.num_virtual_tokens,
                                                  prefix_projection=opts.projection,
                                                  encoder_hidden_size=opts.projection_hidden), name)
    mine = base.train_only(model, cfg, own_pattern(name), before)
    return base.method_plan(model, cfg, mine, opts.lr)
