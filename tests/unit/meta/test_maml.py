import torch
from torch import nn

from tunewright.meta import adapt, maml_loss


def _mse(pred, y):
    return ((pred.squeeze(-1) - y) ** 2).mean()


def _setup():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.7)
    xs, ys = torch.tensor([[[2.0]]]), torch.tensor([[1.0]])       # one episode, one support point
    xq, yq = torch.tensor([[[3.0]]]), torch.tensor([[-0.5]])
    return net, xs, ys, xq, yq


def test_maml_meta_gradient_matches_hand_computation():
    # f(x) = w x, L = (w x - y)^2, one inner step:
    #   w' = w - a * 2 xs (w xs - ys),   dw'/dw = 1 - 2 a xs^2
    #   dLq/dw = 2 (w' xq - yq) xq * dw'/dw          (first order: dw'/dw := 1)
    net, xs, ys, xq, yq = _setup()
    w, a = 0.7, 0.05
    x_s, y_s, x_q, y_q = 2.0, 1.0, 3.0, -0.5
    w1 = w - a * 2 * x_s * (w * x_s - y_s)
    second = 2 * (w1 * x_q - y_q) * x_q * (1 - 2 * a * x_s ** 2)
    first = 2 * (w1 * x_q - y_q) * x_q
    for first_order, expected in ((False, second), (True, first)):
        net.zero_grad()
        params = dict(net.named_parameters())
        loss = maml_loss(net, params, xs, ys, xq, yq, inner_lr=a, steps=1, first_order=first_order,
                         loss_fn=_mse)
        assert abs(float(loss[0].detach()) - (w1 * x_q - y_q) ** 2) < 1e-5
        loss.mean().backward()
        assert abs(float(net.weight.grad) - expected) < 1e-4, (first_order, float(net.weight.grad), expected)
    assert abs(second - first) > 0.1           # the two differ, so the test tells them apart


def test_anil_adapts_only_the_named_parameters():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    params = dict(net.named_parameters())
    fast = adapt(net, params, torch.randn(6, 3), torch.randint(0, 2, (6,)), inner_lr=0.5, steps=2,
                 adapt_names=["1.weight", "1.bias"])
    assert fast["0.weight"] is params["0.weight"]
    assert not torch.equal(fast["1.weight"], params["1.weight"])


def test_vmap_over_episodes_equals_one_at_a_time():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    params = dict(net.named_parameters())
    xs, ys = torch.randn(3, 4, 3), torch.randint(0, 2, (3, 4))
    xq, yq = torch.randn(3, 5, 3), torch.randint(0, 2, (3, 5))
    batched = maml_loss(net, params, xs, ys, xq, yq, inner_lr=0.1, steps=2)
    single = torch.stack([maml_loss(net, params, xs[i:i + 1], ys[i:i + 1], xq[i:i + 1], yq[i:i + 1],
                                    inner_lr=0.1, steps=2)[0] for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-6)
