"""The strategies, each a plain function `(model, cfg) -> Plan`, and `finish`, which adds what every
strategy shares. The fastai recipe reads the same way: freeze, fit, unfreeze, slice(lr/100, lr).

    full                every parameter trains
    feature_extraction  the backbone is frozen and only the head trains (on cached features)
    partial             freeze by rules on parameter names, or keep the top k layer groups (train_top)
    gradual_unfreezing  the head first, then one more layer group at a time, top down (ULMFiT);
                        progressive_unfreezing is the same schedule under its vision name
    lp_ft               probe the head on frozen features to convergence, then fine-tune everything

`finish` then adds, for any strategy: LR multiples (discriminative by group x numbers in rules),
L2-SP, frozen layers kept in eval mode, and a `prepare` step for the head warm start and the
feature cache. A PEFT method runs after all this (run.py) and may freeze more and add parameters.
"""
from __future__ import annotations

from functools import partial as bind

from torch import nn

from ..config.schema import uses_method
from ..errors import ConfigError
from ..training.plan import Plan
from .discriminative import group_scales
from .frozen_mode import FrozenEval
from .groups import GroupIndex, strategy_groups
from .rules import depth_rules, freeze, match, parse_rules
from .spec import Strategy
from .unfreezing import GradualUnfreezing


def _index(model: nn.Module, cfg) -> GroupIndex:
    return GroupIndex(strategy_groups(model, cfg.strategy_options.groups))


def _frozen_groups(model: nn.Module, index: GroupIndex) -> list[str]:
    flags: dict[str, list[bool]] = {}
    for n, p in model.named_parameters():
        flags.setdefault(index(n), []).append(p.requires_grad)
    return [g for g in index.order if not any(flags.get(g, [True]))]


def full(model: nn.Module, cfg) -> Plan:
    for p in model.parameters():
        p.requires_grad_(True)
    return Plan()


def feature_extraction(model: nn.Module, cfg) -> Plan:
    index = _index(model, cfg)
    head = set(index.names_in(model, [index.head]))
    for n, p in model.named_parameters():
        p.requires_grad_(n in head)
    return Plan(notes=[f"feature_extraction: the backbone is frozen; only {index.head!r} trains"])


def partial(model: nn.Module, cfg) -> Plan:
    o = cfg.strategy_options
    rules = parse_rules(o.rules)
    if o.train_top is not None:
        if any(not r.trains for r in rules):
            raise ConfigError("strategy_options.rules: a freeze rule and train_top both decide what freezes; "
                              "use one of them (with train_top, rules may still give LR multiples).")
        groups = strategy_groups(model, o.groups)
        freeze(model, depth_rules(groups, o.train_top), key="strategy_options.train_top")
    elif rules:
        freeze(model, rules)
    else:
        raise ConfigError("strategy: partial needs strategy_options.train_top (train the top k layer groups and "
                          "the head) or strategy_options.rules ([[regex, train | freeze | LR multiple], ...]).")
    frozen = _frozen_groups(model, _index(model, cfg))
    return Plan(notes=[f"partial: frozen layer groups: {', '.join(frozen) or 'none'}"])


def gradual_unfreezing(model: nn.Module, cfg) -> Plan:
    o = cfg.strategy_options
    for p in model.parameters():                 # everything may train; the callback freezes at fit start
        p.requires_grad_(True)
    index = _index(model, cfg)
    cb = GradualUnfreezing(model, index, every=o.unfreeze_every, at=o.unfreeze_at,
                           on_plateau=o.unfreeze_on_plateau, patience=o.plateau_patience)
    when = ("on validation plateaus" if o.unfreeze_on_plateau else
            f"at epochs {o.unfreeze_at}" if o.unfreeze_at else f"every {o.unfreeze_every} epoch(s)")
    return Plan(callbacks=[cb], unfreezing=cb, group_of=index,
                notes=[f"{cfg.strategy}: starts with {index.head!r} only, then unfreezes one group {when}, "
                       f"top down: {', '.join(reversed(index.order[:-1]))}"])


def lp_ft(model: nn.Module, cfg) -> Plan:
    return full(model, cfg)                      # + the head warm start, which finish() adds


def _prepare(data, cfg, device, *, model: nn.Module, notes: list[str], warm: bool, cache: bool):
    from .feature_cache import cache_fit_data
    from .lp_ft import warm_start_head
    if warm:
        warm_start_head(data, model, cfg, device, notes)
    if cache:
        data = cache_fit_data(data, model, cfg, device, notes)
    return data


def finish(plan: Plan, model: nn.Module, cfg) -> Plan:
    """Add what every strategy shares to `plan` (see the module docstring)."""
    from .feature_cache import cache_reasons
    from .l2sp import L2SP
    from .lp_ft import wants_warm_start

    from . import strategy_spec
    spec = strategy_spec(cfg.strategy)
    o, t = cfg.strategy_options, cfg.train
    index = plan.group_of if isinstance(plan.group_of, GroupIndex) else _index(model, cfg)
    head = set(index.names_in(model, [index.head]))
    if any("embed" in n for n in head) and not spec.always_trains_everything:
        plan.notes.append(f"the output layer is tied to the input embeddings ({sorted(head)[0]}): training the "
                          f"head also changes the input embeddings")

    # LR multiples: the discriminative form per group, times the numbers in rules.
    per_group = group_scales(index.order, o.layer_lr, ulmfit_factor=o.ulmfit_factor, layer_decay=o.layer_decay)
    rules = parse_rules(o.rules)
    decided = match([n for n, _ in model.named_parameters()], rules) if rules else {}
    frozen = next((n for n, r in decided.items() if not r.trains), None)
    if frozen is not None and not spec.freezes_by_rules:
        raise ConfigError(f"strategy_options.rules: 'freeze' (here for {frozen!r}) works with strategy: partial "
                          f"only; with {cfg.strategy!r} rules give LR multiples (train or a number).")
    per_name = {n: r.scale for n, r in decided.items()}
    scales = {n: per_group[index(n)] * per_name.get(n, 1.0) for n, _ in model.named_parameters()}
    plan.lr_scale = {**{n: s for n, s in scales.items() if s != 1.0}, **plan.lr_scale}
    if o.layer_lr != "none" or any(s != 1.0 for s in per_name.values()):
        plan.group_of = index                    # one optimizer param group per layer group, named in the logs
    if o.layer_lr != "none":
        plan.notes.append(f"layer-wise LRs ({o.layer_lr}): head x1 down to {index.order[0]} "
                          f"x{min(per_group.values()):.3g}")
    if any(s != 1.0 for s in per_name.values()):
        plan.notes.append(f"rules give {sum(s != 1.0 for s in per_name.values())} parameters an LR multiple")

    if t.l2sp_alpha or t.l2sp_beta:
        plan.callbacks.append(L2SP(model, head, t.l2sp_alpha, t.l2sp_beta))
        if t.weight_decay:
            plan.notes.append(f"L2-SP is on and train.weight_decay={t.weight_decay:g} still decays toward zero; "
                              f"set it to 0 for the paper's objective")
    warm = wants_warm_start(cfg)
    peft = uses_method(cfg)
    bn_frozen = o.bn_stats == "frozen" or (o.bn_stats == "auto" and (warm or peft))
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    bn_trains = spec.unfreezes or \
        any(p.requires_grad for m in bns for p in m.parameters(recurse=False))   # (unfreezing: later)
    if bn_trains and (o.bn_stats == "recalibrate" or (o.bn_stats == "auto" and not bn_frozen)):
        plan.bn_recalibrate_batches = o.bn_recalibrate_batches
        plan.notes.append(f"BatchNorm statistics of the layers that train are recomputed from "
                          f"{o.bn_recalibrate_batches} training batches before every evaluation (bn_stats="
                          f"{o.bn_stats})")
    if bn_frozen and bns:
        why = ("strategy_options.bn_stats=frozen" if o.bn_stats == "frozen" else
               "the head is warm-started on eval-mode features (bn_stats=auto)" if warm else
               f"method {cfg.method} keeps the pretrained function and changes a few parameters (bn_stats=auto)")
        plan.notes.append(f"BatchNorm runs on its stored statistics (its scale and shift still train): {why}")
    if not o.frozen_train_mode or bn_frozen:     # after GradualUnfreezing: it sees the new freezing
        plan.callbacks.append(FrozenEval(frozen_layers=not o.frozen_train_mode, bn_stats=bn_frozen))

    cache = False
    if spec.caches_features:
        reasons = cache_reasons(cfg) + ([] if o.cache_features else ["strategy_options.cache_features is off"])
        if reasons:
            plan.notes.append(f"feature cache: not used, {'; '.join(reasons)}; training runs live")
        cache = not reasons
    elif spec.unfreezes and o.cache_features:
        plan.notes.append("feature cache: not used, the frozen part changes every epoch under gradual unfreezing, "
                          "so a cache would be rebuilt as often as it is used; training runs live")
    if warm or cache:
        plan.prepare = bind(_prepare, model=model, notes=plan.notes, warm=warm, cache=cache)
    return plan


# The strategies' declarations; strategies/__init__.py builds STRATEGIES (and config's allowed names) from them.
DECLARED = (
    Strategy("full", full, trains_everything=True, always_trains_everything=True),
    Strategy("feature_extraction", feature_extraction, trains_everything=False, caches_features=True),
    Strategy("partial", partial, trains_everything=False, caches_features=True, freezes_by_rules=True),
    Strategy("gradual_unfreezing", gradual_unfreezing, trains_everything=True, unfreezes=True,
             aliases=("progressive_unfreezing",)),   # the same schedule; vision papers call it progressive
    Strategy("lp_ft", lp_ft, trains_everything=True, warm_start=True),
)
