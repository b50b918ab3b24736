import torch

from tunewright.continual import ewc_penalty


def test_ewc_penalty_zero_at_anchor_and_quadratic_away():
    g = torch.Generator().manual_seed(0)
    anchor = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)}
    fisher = {"w": torch.rand(3, 4, generator=g), "b": torch.rand(4, generator=g)}
    direction = {k: torch.randn(v.shape, generator=g) for k, v in anchor.items()}
    assert float(ewc_penalty(anchor, anchor, fisher)) == 0.0
    pen = lambda t: float(ewc_penalty({k: anchor[k] + t * direction[k] for k in anchor}, anchor, fisher))  # noqa
    p1 = pen(1.0)
    assert p1 > 0
    for t in (0.5, 2.0, 3.0, -2.0):
        assert abs(pen(t) - t * t * p1) < 1e-4 * max(1.0, t * t * p1)   # grows as t^2
    expected = sum(float((fisher[k] * direction[k] ** 2).sum()) for k in anchor)
    assert abs(p1 - expected) < 1e-4


def test_ewc_callback_gradient_pulls_back_to_anchor():
    from types import SimpleNamespace
    from tunewright.continual.methods import EWC
    lin = torch.nn.Linear(2, 1)
    anchor = {n: p.detach().clone() for n, p in lin.named_parameters()}
    fisher = {n: torch.ones_like(p) for n, p in lin.named_parameters()}
    with torch.no_grad():
        lin.weight += 1.0
    ewc = EWC(lam=2.0)
    ewc.anchors.append((anchor, fisher))
    loss = ewc.on_loss(SimpleNamespace(model=lin), torch.zeros(()), batch={})
    loss.backward()
    assert torch.allclose(lin.weight.grad, 2.0 * torch.ones_like(lin.weight))   # lam * F * (w - w*)
