"""What a strategy declares about itself. Code outside the strategy asks these traits; it never
compares `cfg.strategy` with a name (STYLE.md, "Declare, don't compare names")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Strategy:
    name: str
    plan: Callable                       # (model, cfg) -> Plan: its own decisions, before plans.finish
    trains_everything: bool              # every existing parameter may train: a PEFT method then decides alone
    aliases: tuple[str, ...] = ()        # other names for the same strategy (progressive_unfreezing)
    warm_start: bool = False             # always probes the head first (LP-FT), whatever warm_start_head says
    unfreezes: bool = False              # what is frozen changes during the run (a schedule): no feature cache
    caches_features: bool = False        # the frozen part never changes: a feature cache may stand in for it
    freezes_by_rules: bool = False       # strategy_options.rules may freeze (elsewhere they give LR multiples)
    always_trains_everything: bool = False   # trains everything from the first step to the last (no phase
    #                                          where only the head or a part trains)
