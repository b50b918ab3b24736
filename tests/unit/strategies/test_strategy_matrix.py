"""Every strategy on every kind of model changes exactly the parameters it says it trains.

Weights are compared before and after a short fit (2 epochs): a parameter that should train must
change, every other one must stay bit-identical. Frozen BatchNorm statistics must not move either.
"""
import pytest

from tunewright.strategies.groups import strategy_groups

STRATEGIES = {
    "full": ({}, lambda groups: [g.name for g in groups]),
    "feature_extraction": ({}, lambda groups: [groups[-1].name]),
    "partial": ({"strategy_options": {"train_top": 1}}, lambda groups: [g.name for g in groups[-2:]]),
    # 2 epochs, one more group each epoch: the head, then the group under it.
    "gradual_unfreezing": ({"strategy_options": {"layer_lr": "ulmfit"}, "train": {"schedule": "slanted_triangular"}},
                           lambda groups: [g.name for g in groups[-2:]]),
    "lp_ft": ({}, lambda groups: [g.name for g in groups]),
}
MODELS = ["bert", "llama", "cnn", pytest.param("effnet", marks=pytest.mark.assets)]


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_strategy_changes_exactly_its_parameters(kind, strategy, tmp_path, tw_models, cnn_factory):
    if kind == "effnet":
        pytest.importorskip("efficientnet_lite_pytorch")
    extra, expect = STRATEGIES[strategy]
    cfg = merge(tw_models.config(kind, tmp_path, cnn_factory), {"strategy": strategy, **extra})
    model, before, data, state, plans = tw_models.fit_run(cfg)
    groups = strategy_groups(model)
    training = set(expect(groups))
    should = {n for g in groups if g.name in training for n in g.param_names}
    moved = tw_models.changed(before, model)
    assert moved == should, (f"{strategy} on {kind}: changed but should not: {sorted(moved - should)[:5]}; "
                             f"should change but did not: {sorted(should - moved)[:5]}")
    frozen_modules = {n.rsplit(".", 1)[0] for n, p in model.named_parameters() if n not in should}
    moved_buffers = {n for n in tw_models.changed(before, model, buffers=True) - moved
                     if n.rsplit(".", 1)[0] in frozen_modules}
    assert not moved_buffers, f"frozen layers updated their statistics: {sorted(moved_buffers)}"


@pytest.mark.parametrize("strategy", ["lp_ft", "gradual_unfreezing"])
def test_with_a_peft_method_only_its_parameters_and_the_head_train(strategy, tmp_path, tw_models):
    """lp_ft + LoRA: probe the head, then LoRA fine-tuning (not full); gradual unfreezing unfreezes adapters."""
    cfg = merge(tw_models.config("bert", tmp_path), {"strategy": strategy, "method": "lora"})
    model, before, data, state, plans = tw_models.fit_run(cfg)
    moved = tw_models.changed(before, model)
    assert moved and all("lora_" in n or n.startswith("head.") for n in moved), sorted(moved)[:5]
    assert any(n.startswith("head.") for n in moved) and any("lora_" in n for n in moved)


@pytest.mark.parametrize("strategy, bn_stats, stats_move", [
    ("lp_ft", "auto", False),      # warm-started head: BatchNorm keeps the statistics the probe saw
    ("lp_ft", "train", True),
    ("full", "auto", True),        # no warm start: train, then recalibrated before every evaluation
    ("full", "train", True),
    ("full", "frozen", False),
    ("full+bitfit", "auto", False),  # a PEFT method keeps the pretrained function: BatchNorm shifts train, stats stay
])
def test_bn_stats_decides_whether_trainable_batchnorm_updates_its_statistics(strategy, bn_stats, stats_move,
                                                                             tmp_path, tw_models, cnn_factory):
    cfg = tw_models.config("cnn", tmp_path, cnn_factory)
    strategy, _, method = strategy.partition("+")
    cfg.update(strategy=strategy, strategy_options={"bn_stats": bn_stats}, method=method or "none")
    model, before, _, _, plans = tw_models.fit_run(cfg)
    moved = tw_models.changed(before, model, buffers=True)
    assert "backbone.bn1.bias" in moved                                   # BatchNorm's shift trains either way
    assert ("backbone.bn1.running_mean" in moved) == stats_move, sorted(moved)
    assert ("backbone.bn1.running_var" in moved) == stats_move
    assert any("BatchNorm runs on its stored statistics" in n for n in plans[0].notes) == (not stats_move)
    recal = strategy == "full" and bn_stats == "auto" and not method
    assert (plans[0].bn_recalibrate_batches > 0) == recal
    assert any("recomputed from" in n for n in plans[0].notes) == recal


@pytest.mark.parametrize("strategy, method, task, flag, expected", [
    ("full", "lora", "classification", None, True),        # auto: a PEFT method with a new head
    ("full", "bitfit", "image_classification", None, True),
    ("full", "lora", "causal_lm", None, False),            # the LM head is pretrained: nothing to probe
    ("full", "lora", "regression", None, False),
    ("full", "none", "classification", None, False),       # full fine-tuning: opt in with lp_ft or the flag
    ("lp_ft", "none", "classification", None, True),
    ("lp_ft", "none", "classification", False, True),      # lp_ft is the probe; the flag cannot remove it
    ("full", "lora", "classification", False, False),
    ("full", "none", "classification", True, True),
])
def test_warm_start_head_auto_decides_by_method_and_task(strategy, method, task, flag, expected):
    from tunewright.config.load import config_from_dict
    from tunewright.strategies.lp_ft import wants_warm_start
    cfg = config_from_dict({"model": {"name": "x"}, "data": {"train": "x.csv"}, "task": task, "strategy": strategy,
                            "method": method, "strategy_options": {"warm_start_head": flag}})
    assert wants_warm_start(cfg) is expected


def test_peft_head_is_warm_started_by_default_and_not_when_turned_off(tmp_path, tw_models):
    notes = {}
    for flag in (None, False):
        cfg = merge(tw_models.config("bert", tmp_path / str(flag)), {"method": "lora",
                                                                    "strategy_options": {"warm_start_head": flag}})
        *_, plans = tw_models.fit_run(cfg)
        notes[flag] = [n for p in plans for n in p.notes if n.startswith("head warm start (linear probe)")]
    assert len(notes[None]) == 1 and not notes[False]


def test_linear_probe_fits_and_leaves_no_gradient_behind():
    """Leftover probe gradients would add into the first training step (and break exact resume)."""
    import torch
    from tunewright.strategies.lp_ft import linear_probe
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(64, 5, generator=g)
    labels = (feats[:, 0] > 0).long()                     # separable by the first feature
    head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(5, 2))
    stats = linear_probe(head, feats, labels, "classification")
    assert stats["train_accuracy"] == 1.0
    assert all(p.grad is None for p in head.parameters())
    assert head.training                                  # its mode is restored
