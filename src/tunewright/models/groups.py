"""Layer groups: a model's parameters split bottom -> top, for gradual unfreezing, discriminative
learning rates and per-layer analysis.

One discovery function serves HF transformers, the packaged CNN and plain modules, by structure
and names rather than per-model code:

1. The *block stack* is the ModuleList/Sequential whose children (>= 2) all share one class and
   that holds the most parameters: ``encoder.layer`` (BERT), ``model.layers`` (Llama), ``h``
   (GPT-2), ``_blocks`` (EfficientNet).
2. Groups, in parameter registration order: everything before the stack (``embeddings``, or
   ``stem`` when it holds convolutions), one group per block (``block.N``), everything after it
   (``final``: final norm, pooler, conv head), then ``head``: the TaskModel's ``head.`` plus output
   layers named ``lm_head``/``classifier``/``score``.
3. Blocks that expose EfficientNet-style ``_block_args`` are merged into stages (``stage.N``): a
   block continues a stage when its args equal the previous block's with ``input_filters =
   output_filters, stride = 1`` (exactly how the package builds repeats).
4. No stack (a small CNN, an MLP): one group per top-level child of the backbone, then ``head``.

Every parameter (frozen ones too, so unfreezing schedules can use the groups) is in exactly one
group; tied parameters appear once, under their first name. ``rules`` overrides all of this:
``[(regex, group_name), ...]``, first match wins, ``group_name`` may use ``\\1``-style
backreferences, groups are ordered by rule then by first parameter; an unmatched parameter is a
ConfigError that lists it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

from torch import nn

from tunewright.errors import ConfigError

HEAD_RE = re.compile(r"(^|\.)(lm_head|classifier|score)\.")


@dataclass
class LayerGroup:
    name: str
    param_names: list[str] = field(default_factory=list)


def _params(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return list(module.named_parameters())  # remove_duplicate=True: tied weights once


def find_block_stack(module: nn.Module) -> Optional[tuple[str, nn.Module]]:
    """``(dotted_name, container)`` of the largest homogeneous ModuleList/Sequential, or None."""
    best, best_size = None, 0
    for name, sub in module.named_modules():
        if not isinstance(sub, (nn.ModuleList, nn.Sequential)) or len(sub) < 2:
            continue
        kinds = {type(child) for child in sub}
        size = sum(p.numel() for p in sub.parameters())
        if len(kinds) == 1 and size > best_size:
            best, best_size = (name, sub), size
    return best


def _stage_ids(stack: nn.Module) -> Optional[list[int]]:
    """Stage index per block, for blocks with EfficientNet-style ``_block_args``; else None."""
    args = [getattr(b, "_block_args", None) for b in stack]
    if any(a is None or not hasattr(a, "_replace") for a in args):
        return None
    ids, stage = [0], 0
    for prev, cur in zip(args, args[1:]):
        if cur != prev._replace(input_filters=prev.output_filters, stride=1):
            stage += 1
        ids.append(stage)
    return ids


def _by_rules(names: Sequence[str], rules: Sequence[tuple[str, str]]) -> list[LayerGroup]:
    compiled = [(re.compile(rx), group) for rx, group in rules]
    groups: dict[tuple[int, str], LayerGroup] = {}
    unmatched = []
    for name in names:
        for i, (rx, group) in enumerate(compiled):
            m = rx.search(name)
            if m:
                gname = m.expand(group)
                groups.setdefault((i, gname), LayerGroup(gname)).param_names.append(name)
                break
        else:
            unmatched.append(name)
    if unmatched:
        raise ConfigError(f"layer group rules match no rule for {len(unmatched)} parameters, e.g. "
                          f"{unmatched[:5]}; add a catch-all rule such as ('.*', 'rest').")
    merged: dict[str, LayerGroup] = {}  # two rules may name the same group: keep the first's position
    for (_, gname), g in sorted(groups.items(), key=lambda kv: kv[0][0]):
        merged.setdefault(gname, LayerGroup(gname)).param_names.extend(g.param_names)
    return list(merged.values())


def layer_groups(model: nn.Module, rules: Optional[Sequence[tuple[str, str]]] = None) -> list[LayerGroup]:
    """Parameter names of ``model`` grouped bottom -> top, the head last (see module docstring)."""
    params = _params(model)
    if rules:
        return _by_rules([n for n, _ in params], rules)
    is_task = isinstance(getattr(model, "backbone", None), nn.Module) and isinstance(getattr(model, "head", None), nn.Module)
    body, prefix = (model.backbone, "backbone.") if is_task else (model, "")
    ids = {id(p) for _, p in body.named_parameters()}
    head = [n for n, p in params if id(p) not in ids]          # TaskModel: head.*, plus anything else new
    body_params = [(n, p) for n, p in params if id(p) in ids]
    stack = find_block_stack(body)

    ordered: list[LayerGroup] = []

    def add(group_name: str, name: str) -> None:
        if not ordered or ordered[-1].name != group_name:
            existing = next((g for g in ordered if g.name == group_name), None)
            if existing is not None:  # same group again (registration order interleaves): keep one
                existing.param_names.append(name)
                return
            ordered.append(LayerGroup(group_name))
        ordered[-1].param_names.append(name)

    if stack is None:
        for name, _ in body_params:
            child = name[len(prefix):].split(".")[0]
            add(child, name)
    else:
        stack_name, container = stack
        stack_prefix = prefix + (stack_name + "." if stack_name else "")
        stages = _stage_ids(container)
        label = "stage" if stages else "block"
        seen_stack, before = False, []
        for name, p in body_params:
            if name.startswith(stack_prefix):
                seen_stack = True
                idx = int(name[len(stack_prefix):].split(".")[0])
                add(f"{label}.{stages[idx] if stages else idx}", name)
            elif HEAD_RE.search(name[len(prefix):]):
                head.append(name)
            elif not seen_stack:
                before.append((name, p))
                add("embeddings", name)
            else:
                add("final", name)
        if before and not any("embed" in n for n, _ in before) and any(p.dim() == 4 for _, p in before):
            next(g for g in ordered if g.name == "embeddings").name = "stem"  # CNN: conv stem, not embeddings
    if head:
        ordered.append(LayerGroup("head", head))
    return ordered


def group_of(model: nn.Module, rules: Optional[Sequence[tuple[str, str]]] = None) -> dict[str, str]:
    """Parameter name -> group name (for ``optim.param_groups(group_of=...)``)."""
    return {n: g.name for g in layer_groups(model, rules) for n in g.param_names}
