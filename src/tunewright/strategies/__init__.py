"""Strategies choose which of the model's existing parameters train, and at what LR multiple.

`plan_strategy(model, cfg) -> Plan` is the one entry point the run uses. Each strategy is a plain
function `(model, cfg) -> Plan` in plans.py, declared there with its traits (`Strategy`, spec.py:
trains everything? warm start? a schedule? a feature cache?). `STRATEGIES`, the names `strategy:`
allows in a config, and every question other code asks about a strategy come from those
declarations. `Plan` and `FitData` live in training/plan.py, below strategies and peft, so that
neither package imports the other. The functions come from one file per job:

    spec.py            Strategy: the declaration (name, plan function, traits)

    rules.py           freeze(model, rules): (regex, train | freeze | LR multiple), uncovered = error
    groups.py          layer groups bottom -> top with the head on top; GroupIndex (name -> group)
    discriminative.py  ULMFiT / layer-decay LR multiples per group
    unfreezing.py      unfreeze_top(model, index, k) + the GradualUnfreezing callback
    frozen_mode.py     eval_frozen(model) + the FrozenEval callback
    feature_cache.py   frozen features or a frozen prefix computed once; what fit() trains on them
    lp_ft.py           linear_probe(head, features, labels): the head warm start of LP-FT
    l2sp.py            l2sp_penalty(...) + the L2SP callback
"""
from __future__ import annotations

import torch

from ..config import declared
from ..training.plan import Plan
from .spec import Strategy
from .plans import DECLARED

# name -> declaration, built from the declarations at the end of plans.py (aliases included).
STRATEGIES: dict[str, Strategy] = {n: s for s in DECLARED for n in (s.name, *s.aliases)}
declared.declare("strategy", STRATEGIES)     # config checks `strategy:` against these names when it loads


def strategy_spec(name: str) -> Strategy:
    """The declaration of strategy `name` (a ConfigError naming the known ones if there is none)."""
    declared.check("strategy", name)
    return STRATEGIES[name]


def plan_strategy(model: torch.nn.Module, cfg) -> Plan:
    """The strategy's own decisions (plans.py), then what every strategy shares (`plans.finish`)."""
    from .options import check_options
    from .plans import finish
    check_options(cfg)         # done at config load too; a Config built in code skips that
    spec = strategy_spec(cfg.strategy)
    plan = spec.plan(model, cfg)
    plan.chose_parameters = not spec.trains_everything    # what a PEFT method applied next keeps (training/plan.py)
    return finish(plan, model, cfg)
