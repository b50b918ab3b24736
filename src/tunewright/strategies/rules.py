"""Which parameters train, decided by rules on their names: `freeze(model, rules)`.

A rule is `(regex, action)`. The first rule whose regex `re.search`-es a parameter's name decides
what that parameter does (google-research/big_vision's optax.py works the same way):

    "train"    it trains at the base LR
    "freeze"   requires_grad = False
    a number   it trains at that multiple of the base LR

Every parameter must be covered by some rule. An uncovered parameter is a ConfigError that names
it, so a rule list written for one model cannot silently leave a new layer of another model
trained or untrained. End a list with a catch-all such as `(".*", "freeze")` to say what the rest
does.

    rules = parse_rules([[r"^head\\.", "train"], [r"layer\\.[45]\\.", 0.5], [".*", "freeze"]])
    scales = freeze(model, rules)        # {name: LR multiple} of the parameters that train

`depth_rules(groups, k)` writes "train the top k layer groups and the head" as such rules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence, Union

from torch import nn

from ..errors import ConfigError

ACTIONS = ("train", "freeze")
Action = Union[str, float]


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern
    action: Action                      # "train", "freeze" or an LR multiple > 0

    @property
    def trains(self) -> bool:
        return self.action != "freeze"

    @property
    def scale(self) -> float:
        return 1.0 if self.action in ACTIONS else float(self.action)


def parse_rules(raw: Any, key: str = "strategy_options.rules") -> list[Rule]:
    """`[[regex, action], ...]` (or a mapping `{regex: action}`, in order) -> rules.

    Errors name the key, the entry, the value given and what is allowed.
    """
    if isinstance(raw, dict):
        raw = list(raw.items())
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of [regex, action] pairs, got {raw!r}.")
    rules = []
    for i, entry in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[0], str):
            raise ConfigError(f"{where}: {entry!r} is not allowed; write [regex, action] with action train, "
                              f"freeze or an LR multiple such as 0.1.")
        pattern, action = entry
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"{where}: {pattern!r} is not a valid regular expression ({e}).") from None
        if isinstance(action, bool) or not (action in ACTIONS or isinstance(action, (int, float))):
            raise ConfigError(f"{where}: action {action!r} is not allowed; choose train, freeze or an LR "
                              f"multiple > 0.")
        if isinstance(action, (int, float)) and not action > 0:
            raise ConfigError(f"{where}: LR multiple {action!r} is not allowed; it must be > 0 (use freeze "
                              f"to stop a parameter from training).")
        rules.append(Rule(compiled, action if isinstance(action, str) else float(action)))
    return rules


def match(names: Iterable[str], rules: Sequence[Rule], key: str = "strategy_options.rules") -> dict[str, Rule]:
    """The deciding (first matching) rule of every name; an uncovered name is a ConfigError."""
    decided, uncovered = {}, []
    for name in names:
        rule = next((r for r in rules if r.pattern.search(name)), None)
        if rule is None:
            uncovered.append(name)
        else:
            decided[name] = rule
    if uncovered:
        shown = ", ".join(uncovered[:5]) + (f" and {len(uncovered) - 5} more" if len(uncovered) > 5 else "")
        raise ConfigError(f"{key}: no rule covers parameter {uncovered[0]!r} ({len(uncovered)} uncovered: "
                          f"{shown}). Every parameter needs a rule; end the list with a catch-all such as "
                          f"['.*', 'freeze'].")
    return decided


def freeze(model: nn.Module, rules: Sequence[Rule], key: str = "strategy_options.rules") -> dict[str, float]:
    """Set `requires_grad` of every parameter by `rules`; return {name: LR multiple} of those that train.

    All names are checked before anything changes, so an error leaves the model as it was.
    """
    params = dict(model.named_parameters())
    decided = match(params, rules, key)
    for name, rule in decided.items():
        params[name].requires_grad_(rule.trains)
    return {name: rule.scale for name, rule in decided.items() if rule.trains}


def depth_rules(groups, k: int) -> list[Rule]:
    """Rules that train the top `k` layer groups below the head, and the head; the rest freezes."""
    if k < 0:
        raise ConfigError(f"strategy_options.train_top: {k!r} is not allowed; it must be >= 0.")
    below_head = len(groups) - 1
    if k > below_head:
        raise ConfigError(f"strategy_options.train_top: {k} is not allowed; this model has {below_head} layer "
                          f"groups below the head ({', '.join(g.name for g in groups[:-1])}).")
    top = groups[len(groups) - 1 - k:]
    return [Rule(re.compile(f"^{re.escape(n)}$"), "train" if g in top else "freeze")
            for g in groups for n in g.param_names]
