"""The pure LR multipliers equal torch.optim.lr_scheduler step for step, where torch has the schedule."""
import math

import pytest
import torch

from tunewright.optim.schedules import constant, cosine, one_cycle, polynomial, slanted_triangular

TOTAL = 50


def torch_lrs(make, total=TOTAL, lr=1.0):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_equals_cosine_annealing_lr():
    ours = [cosine(s, TOTAL, 0, min_ratio=0.1) for s in range(TOTAL)]
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=TOTAL, eta_min=0.1))
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_polynomial_equals_polynomial_lr():
    ours = [polynomial(s, TOTAL, 0, power=2.0) for s in range(TOTAL)]
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=TOTAL, power=2.0))
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_linear_warmup_equals_linear_lr():
    warm = 10
    ours = [constant(s, TOTAL, warm) for s in range(TOTAL)]
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / warm, total_iters=warm - 1))
    assert ours == pytest.approx(theirs, abs=1e-9)


@pytest.mark.parametrize("pct", [0.25, 0.3, 0.5])
def test_one_cycle_equals_one_cycle_lr(pct):
    ours = [one_cycle(s, TOTAL, 0, pct_start=pct, div=25.0, final_div=1e4) for s in range(TOTAL)]
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=1.0, total_steps=TOTAL, pct_start=pct, div_factor=25.0, final_div_factor=1e4,
        cycle_momentum=False))
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_slanted_triangular_rises_for_cut_frac_then_decays_to_one_over_ratio():
    vals = [slanted_triangular(t, 200, 0, cut_frac=0.2, ratio=10) for t in range(200)]
    assert vals[0] == pytest.approx(0.1) and vals[40] == pytest.approx(1.0)
    assert max(range(200), key=vals.__getitem__) == 40
    assert all(a < b for a, b in zip(vals[:40], vals[1:41])) and all(a >= b for a, b in zip(vals[40:], vals[41:]))
    assert math.isclose(min(vals), 0.1, rel_tol=1e-9)
