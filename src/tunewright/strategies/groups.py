"""Layer groups as the strategies see them: bottom to top, and the top one is the head.

`models.layer_groups` is the one discovery function (HF: embeddings, each block, final, head;
EfficientNet: stem, each stage, final, head; plain modules: top-level children). Two things are
added here, because only training strategies need them:

1. The top group is always the one that trains first ("the head"). A causal LM whose output
   layer is tied to its input embeddings has no separate head parameter (`lm_head.weight` *is*
   `embed_tokens.weight`), so that shared matrix becomes the head group: training the head then
   also changes the input embeddings, and `plan_strategy` says so in a note.
2. `GroupIndex` answers "which group is this parameter in?" for parameters that did not exist
   when the groups were found. A PEFT method runs after the strategy and adds parameters inside
   existing modules (`...query.lora_A.weight`) or wraps them (`...query.base_layer.weight`); such a
   name takes the group of the nearest enclosing module that had parameters before. A name under
   no known module is new, like the head, and joins the head group.
"""
from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from ..errors import ConfigError
from ..models.groups import LayerGroup, layer_groups


def _tied_output_name(model: nn.Module) -> Optional[str]:
    """Name of the output projection's weight when it is shared with the input embeddings."""
    backbone = getattr(model, "backbone", model)
    get_out = getattr(backbone, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    weight = getattr(out, "weight", None)
    if weight is None:
        return None
    return next((n for n, p in model.named_parameters() if p is weight), None)


def strategy_groups(model: nn.Module, rules: Optional[Sequence] = None) -> list[LayerGroup]:
    """`layer_groups(model, rules)`, bottom to top, with the head on top (see module docstring)."""
    groups = layer_groups(model, [tuple(r) for r in rules] if rules else None)
    if not groups:
        raise ConfigError("the model has no parameters, so there is nothing to train.")
    if rules or groups[-1].name == "head":
        return groups
    tied = _tied_output_name(model)
    if tied is None:
        return groups                      # a plain module: its top-level child on top is the head
    for g in groups:
        if tied in g.param_names:
            g.param_names.remove(tied)
    groups = [g for g in groups if g.param_names]
    return groups + [LayerGroup("head", [tied])]


def module_path(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


class GroupIndex:
    """Parameter name -> layer group name, for names known now and names added later."""

    def __init__(self, groups: Sequence[LayerGroup]):
        self.order = [g.name for g in groups]            # bottom -> top; the head is last
        self._of = {n: g.name for g in groups for n in g.param_names}
        self._module: dict[str, str] = {}
        for g in groups:
            for n in g.param_names:
                self._module.setdefault(module_path(n), g.name)

    @property
    def head(self) -> str:
        return self.order[-1]

    def depth(self, group: str) -> int:
        """0 for the head, 1 for the group below it, ..."""
        return len(self.order) - 1 - self.order.index(group)

    def __call__(self, name: str) -> str:
        hit = self._of.get(name)
        if hit is not None:
            return hit
        parts = name.split(".")[:-1]
        while parts:
            hit = self._module.get(".".join(parts))
            if hit is not None:
                break
            parts.pop()
        self._of[name] = hit or self.head              # remember: optimizers ask once per parameter
        return self._of[name]

    def names_in(self, model: nn.Module, groups: Sequence[str]) -> list[str]:
        wanted = set(groups)
        return [n for n, _ in model.named_parameters() if self(n) in wanted]
