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

Prefix initialisation (``prefix_tuning.init_text``, causal LMs): peft draws the prefix keys and
values at random, N(0, 1), far from the scale of a real attention layer's keys and values. On
SmolLM2-135M that took Friends perplexity from 104 to 1,752 after 20 steps. With ``init_text`` the
prefix starts as the base model's own key/value cache of that text (its first n tokens, repeated
if shorter), so the run starts as the base model reading that text first, the way
``prompt_tuning.init_text`` starts from the text's embeddings (Li & Liang 2021 also initialise
from real words' activations). peft has no such option, hence the code below.
"""
from __future__ import annotations

from ..config.schema import PromptTuningOptions, PrefixTuningOptions
from ..errors import ConfigError
from . import base
from .method import Method


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
    init = None
    if opts.init_text:
        if opts.projection:
            raise ConfigError("prefix_tuning.init_text sets the prefix itself; with prefix_tuning.projection an MLP "
                              "produces it. Use one of the two.")
        if model.task != "causal_lm" or base.is_peft(model):
            raise ConfigError(f"prefix_tuning.init_text needs a causal LM as the first method (it reads the "
                              f"model's key/value cache); this run is task {model.task!r}. Leave init_text empty.")
        init = _text_cache(model, opts.init_text, opts.num_virtual_tokens)
    before = base.flags(model)
    base.wrap_peft(model, peft.PrefixTuningConfig(task_type=base.peft_task_type(model),
                                                  num_virtual_tokens=opts.num_virtual_tokens,
                                                  prefix_projection=opts.projection,
                                                  encoder_hidden_size=opts.projection_hidden), name)
    if init is not None:
        _load_prefix(model, name, init)
    mine = base.train_only(model, cfg, own_pattern(name), before)
    return base.method_plan(model, cfg, mine, opts.lr)


def _text_cache(model, text: str, n: int) -> list:
    """[(keys, values)] per layer, each (kv_heads, n, head_dim): the backbone's cache of `text`'s first
    n tokens (repeated to n if shorter)."""
    import torch
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model.source["name_or_path"])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"prefix_tuning.init_text {text!r} has no tokens.")
    ids = (ids * (n // len(ids) + 1))[:n]
    p = next(model.backbone.parameters())
    with torch.no_grad():
        out = model.backbone(input_ids=torch.tensor([ids], device=p.device), use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    return [(layer.keys[0], layer.values[0]) for layer in cache.layers]


def _load_prefix(model, name: str, layers: list) -> None:
    """Write per-layer (keys, values) into peft's prefix table. peft reads row i of the table
    (num_virtual_tokens, num_layers * 2 * token_dim) as (num_layers * 2, heads, head_dim): the key of
    layer l at 2l, its value at 2l + 1 (PeftModel.get_prompt)."""
    import torch
    weight = model.backbone.prompt_encoder[name].embedding.weight          # (n, num_layers * 2 * token_dim)
    n = weight.shape[0]
    blocks = [t.permute(1, 0, 2).reshape(n, -1) for kv in layers for t in kv]   # (n, heads * head_dim) each
    table = torch.cat(blocks, dim=1)
    if table.shape != weight.shape:
        raise ConfigError(f"prefix_tuning.init_text: the model's cache gives a prefix of shape {tuple(table.shape)}, "
                          f"peft expects {tuple(weight.shape)}; leave init_text empty for this model.")
    with torch.no_grad():
        weight.copy_(table.to(weight.dtype))


# Virtual tokens change every output from the start, and add no weight update to merge.
PROMPT_TUNING = Method("prompt_tuning", apply_prompt, own_pattern, module=__name__,
                       adapter_pattern=r"\.prompt_encoder\.|^backbone\.prompt_encoder\.", equal_at_init=False,
                       merges=False, options=PromptTuningOptions)
PREFIX_TUNING = Method("prefix_tuning", apply_prefix, own_pattern, module=__name__,
                       adapter_pattern=r"\.prompt_encoder\.|^backbone\.prompt_encoder\.", equal_at_init=False,
                       merges=False, options=PrefixTuningOptions)
