"""Checks of `strategy_options`, the schedule options and L2-SP that need no model, so a bad value
fails when the config loads, before data is read or a model loads. Each error names the key, the
value given and what is allowed."""
from __future__ import annotations

from ..errors import ConfigError
from .rules import parse_rules


def _need(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {value!r} is not allowed; {allowed}.")


def check_options(cfg) -> None:
    from . import strategy_spec
    spec = strategy_spec(cfg.strategy)          # an unknown name: the error names the known ones
    o, t = cfg.strategy_options, cfg.train
    parse_rules(o.rules)
    for i, entry in enumerate(o.groups):
        _need(isinstance(entry, (list, tuple)) and len(entry) == 2 and all(isinstance(x, str) for x in entry),
              f"strategy_options.groups[{i}]", entry, "write [regex, group name]")
    _need(o.train_top is None or o.train_top >= 0, "strategy_options.train_top", o.train_top, "it must be >= 0")
    _need(o.ulmfit_factor >= 1, "strategy_options.ulmfit_factor", o.ulmfit_factor, "it must be >= 1")
    _need(0 < o.layer_decay <= 1, "strategy_options.layer_decay", o.layer_decay, "it must be in (0, 1]")
    _need(o.unfreeze_every >= 1, "strategy_options.unfreeze_every", o.unfreeze_every, "it must be >= 1")
    _need(all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in o.unfreeze_at)
          and list(o.unfreeze_at) == sorted(o.unfreeze_at), "strategy_options.unfreeze_at", o.unfreeze_at,
          "give epochs >= 0 in increasing order, e.g. [1, 2, 4]")
    _need(o.plateau_patience >= 1, "strategy_options.plateau_patience", o.plateau_patience, "it must be >= 1")
    _need(o.probe_max_iter >= 1, "strategy_options.probe_max_iter", o.probe_max_iter, "it must be >= 1")
    _need(o.bn_recalibrate_batches >= 1, "strategy_options.bn_recalibrate_batches", o.bn_recalibrate_batches,
          "it must be >= 1 (bn_stats=train turns recalibration off)")
    _need(o.probe_weight_decay >= 0, "strategy_options.probe_weight_decay", o.probe_weight_decay, "it must be >= 0")
    if spec.freezes_by_rules and o.train_top is None and not o.rules:
        raise ConfigError("strategy: partial needs strategy_options.train_top (train the top k layer groups and "
                          "the head) or strategy_options.rules ([[regex, train | freeze | LR multiple], ...]).")
    _need(0 < t.cut_frac < 1, "train.cut_frac", t.cut_frac, "it must be in (0, 1)")
    _need(t.stlr_ratio >= 1, "train.stlr_ratio", t.stlr_ratio, "it must be >= 1")
    _need(0 < t.pct_start < 1, "train.pct_start", t.pct_start, "it must be in (0, 1)")
    _need(t.div_factor > 0, "train.div_factor", t.div_factor, "it must be > 0")
    _need(t.final_div_factor > 0, "train.final_div_factor", t.final_div_factor, "it must be > 0")
    _need(t.power > 0, "train.power", t.power, "it must be > 0")
    _need(0 <= t.min_lr_ratio < 1, "train.min_lr_ratio", t.min_lr_ratio, "it must be in [0, 1)")
    _need(t.l2sp_alpha >= 0, "train.l2sp_alpha", t.l2sp_alpha, "it must be >= 0 (0: off)")
    _need(t.l2sp_beta >= 0, "train.l2sp_beta", t.l2sp_beta, "it must be >= 0 (0: off)")
