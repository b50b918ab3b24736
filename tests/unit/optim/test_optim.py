import math

import pytest
import torch

from tunewright.optim import build_optimizer, build_scheduler, no_decay, param_groups
from tunewright.optim.schedules import SCHEDULES, cosine, linear, slanted_triangular


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.lin = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 2)


def test_no_decay_on_biases_and_norms():
    groups = param_groups(Net(), lr=1e-3, weight_decay=0.1)
    by_name = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
    assert by_name["lin.bias"] == 0.0 and by_name["norm.weight"] == 0.0 and by_name["norm.bias"] == 0.0
    assert by_name["lin.weight"] == 0.1 and by_name["emb.weight"] == 0.1 and by_name["head.weight"] == 0.1


def test_each_param_in_exactly_one_group_and_frozen_excluded():
    net = Net()
    net.emb.weight.requires_grad_(False)
    groups = param_groups(net, 1e-3, 0.01, lr_scale={"head.weight": 10.0})
    names = [n for g in groups for n in g["param_names"]]
    assert len(names) == len(set(names)) and "emb.weight" not in names
    head = next(g for g in groups if "head.weight" in g["param_names"])
    assert head["lr"] == pytest.approx(1e-2)


def test_adamw_and_sgd_build():
    g = param_groups(Net(), 1e-3, 0.0)
    assert isinstance(build_optimizer(g, "adamw", 1e-3), torch.optim.AdamW)
    assert isinstance(build_optimizer(param_groups(Net(), 1e-3, 0.0), "sgd", 1e-3), torch.optim.SGD)
    with pytest.raises(ValueError):
        build_optimizer([], "adamw", 1e-3)


def test_linear_warmup_then_decay():
    vals = [linear(s, 100, 10) for s in range(100)]
    assert vals[0] == pytest.approx(0.1) and vals[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(vals[9:], vals[10:])) and vals[-1] < 0.02


def test_cosine_shape():
    assert cosine(10, 110, 10) == pytest.approx(1.0)
    assert cosine(60, 110, 10) == pytest.approx(0.5)
    assert cosine(110, 110, 10) == pytest.approx(0.0, abs=1e-9)


def test_slanted_triangular_matches_ulmfit_formula():
    total, cut_frac, ratio = 1000, 0.1, 32
    vals = [slanted_triangular(t, total, 0, cut_frac, ratio) for t in range(total)]
    peak = max(range(total), key=lambda t: vals[t])
    assert peak == 100 and vals[peak] == pytest.approx(1.0)
    assert vals[0] == pytest.approx(1 / ratio)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_group_follows_schedule_at_its_own_peak(name):
    net = Net()
    groups = param_groups(net, 1e-3, 0.0, lr_scale={"head.weight": 4.0, "head.bias": 4.0})
    opt = build_optimizer(groups, "sgd", 1e-3)
    sched = build_scheduler(opt, name, total=50, warmup_ratio=0.1)
    from tunewright.optim.schedules import schedule_fn
    fn = schedule_fn(name, 50, 5)
    for step in range(50):
        for g in opt.param_groups:
            assert g["lr"] == pytest.approx(g["initial_lr"] * fn(step))
        opt.step()
        sched.step()
    assert all(math.isfinite(g["lr"]) for g in opt.param_groups)
