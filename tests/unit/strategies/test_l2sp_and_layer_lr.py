"""L2-SP's penalty and pull, and the three forms of discriminative LRs."""
import pytest
import torch
from torch import nn

from tunewright.strategies.discriminative import group_scales
from tunewright.strategies.l2sp import L2SP, l2sp_penalty


def test_l2sp_penalty_formula_and_gradient_points_back_to_start():
    w0 = torch.tensor([1.0, -2.0])
    w = nn.Parameter(torch.tensor([1.5, -1.0]))
    head = nn.Parameter(torch.tensor([[3.0]]))
    pen = l2sp_penalty([(w, w0)], [head], alpha=0.1, beta=0.01)
    assert pen.item() == pytest.approx(0.1 / 2 * (0.25 + 1.0) + 0.01 / 2 * 9.0)
    pen.backward()
    assert torch.allclose(w.grad, 0.1 * (w.detach() - w0))          # descent moves w toward w0


def test_l2sp_callback_anchors_pretrained_weights_not_the_head():
    model = nn.Sequential()
    model.add_module("body", nn.Linear(2, 2))
    model.add_module("head", nn.Linear(2, 1))
    cb = L2SP(model, {"head.weight", "head.bias"}, alpha=1.0, beta=1.0)
    assert [p for p, _ in cb.pairs] == [model.body.weight, model.body.bias]
    assert cb.new == [model.head.weight]                              # weights only, as in the paper
    loss = torch.tensor(0.0)
    start = cb.on_loss(None, loss, {})
    with torch.no_grad():
        model.body.weight.add_(1.0)
    assert cb.on_loss(None, loss, {}).item() == pytest.approx(start.item() + 0.5 * 4)


def test_group_scales():
    order = ["embeddings", "block.0", "block.1", "head"]
    assert group_scales(order, "ulmfit") == pytest.approx({"embeddings": 2.6 ** -3, "block.0": 2.6 ** -2,
                                                          "block.1": 2.6 ** -1, "head": 1.0})
    assert group_scales(order, "decay", layer_decay=0.5) == {"embeddings": 0.125, "block.0": 0.25, "block.1": 0.5,
                                                             "head": 1.0}
    assert set(group_scales(order, "none").values()) == {1.0}


def test_rule_multiples_combine_with_layer_decay(tmp_path, tw_models):
    from tunewright.config.load import config_from_dict
    from tunewright.run import assemble
    cfg = tw_models.config("bert", tmp_path)
    cfg.update(strategy="full", strategy_options={"layer_lr": "decay", "layer_decay": 0.5,
                                                  "rules": [[r"LayerNorm", 0.1], [".*", "train"]]})
    asm = assemble(config_from_dict(cfg))
    lr = {n: g["lr"] for g in asm.optimizer.param_groups for n in g["param_names"]}
    assert lr["head.1.weight"] == pytest.approx(3e-3)
    assert lr["backbone.encoder.layer.1.output.dense.weight"] == pytest.approx(3e-3 * 0.5)
    assert lr["backbone.encoder.layer.0.output.LayerNorm.weight"] == pytest.approx(3e-3 * 0.25 * 0.1)
    names = [n for g in asm.optimizer.param_groups for n in g["param_names"]]
    assert len(names) == len(set(names))
    cfg["strategy_options"]["rules"] = [[".*", "freeze"]]
    from tunewright.errors import ConfigError
    with pytest.raises(ConfigError, match="'freeze' .* works with strategy: partial only"):
        assemble(config_from_dict(cfg))
