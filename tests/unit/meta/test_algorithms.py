import pytest
import torch
from torch import nn

from tunewright.config import load_config
from tunewright.errors import ConfigError
from tunewright.meta.algorithms import ALGORITHMS, episode_accuracy, episode_losses, get_algorithm


def _net(d_in=3, d=4, n_way=2):
    torch.manual_seed(0)
    enc = nn.Linear(d_in, d)
    enc.feature_dim = d
    return nn.Sequential(enc, nn.Linear(d, n_way))


def test_protonet_logits_are_minus_squared_distances_to_the_class_means():
    net = _net(d_in=2, d=2)
    with torch.no_grad():                      # encoder = identity, so the prototypes are plain means
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    xs = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
    ys = torch.tensor([0, 0, 1, 1])            # prototypes (1, 0) and (0, 5)
    xq = torch.tensor([[1.0, 1.0]])
    logits = ALGORITHMS["protonet"].query_logits(net, dict(net.named_parameters()), xs, ys, xq, n_way=2)
    # |(1,1)-(1,0)|^2 = 1, |(1,1)-(0,5)|^2 = 1 + 16 = 17
    assert torch.allclose(logits, torch.tensor([[-1.0, -17.0]]))


def test_protonet_trains_the_encoder_and_never_the_head():
    net = _net()
    xs, ys = torch.randn(2, 4, 3), torch.tensor([[0, 0, 1, 1]] * 2)
    xq, yq = torch.randn(2, 6, 3), torch.tensor([[0, 1, 0, 1, 0, 1]] * 2)
    loss = episode_losses(ALGORITHMS["protonet"], net, dict(net.named_parameters()), xs, ys, xq, yq, n_way=2,
                          inner_lr=0.0, steps=0)
    loss.mean().backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0
    assert net[1].weight.grad is None


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_what_adapts_follows_the_declaration(name):
    algo = ALGORITHMS[name]
    net = _net()
    names = algo.adapt_names(net)
    everything = [n for n, _ in net.named_parameters()]
    if not algo.inner_loop:
        assert names == []
    elif algo.head_only:
        assert names == ["1.weight", "1.bias"]
    else:
        assert names is None                  # every parameter
    # one meta-batch of 3 episodes: logits have the query shape and the losses are finite
    xs, ys = torch.randn(3, 4, 3), torch.tensor([[0, 0, 1, 1]] * 3)
    xq, yq = torch.randn(3, 6, 3), torch.tensor([[0, 1, 0, 1, 0, 1]] * 3)
    losses = episode_losses(algo, net, dict(net.named_parameters()), xs, ys, xq, yq, n_way=2, inner_lr=0.1, steps=2)
    assert losses.shape == (3,) and torch.isfinite(losses).all()
    acc = episode_accuracy(algo, net, {n: p.detach() for n, p in net.named_parameters()}, xs, ys, xq, yq,
                           n_way=2, inner_lr=0.1, steps=2)
    assert acc.shape == (3,) and ((acc >= 0) & (acc <= 1)).all()
    assert set(everything) == {n for n, _ in net.named_parameters()}


def test_meta_learning_a_metric_beats_the_untrained_one_on_held_out_classes():
    """ProtoNet on 2-D clusters whose class is told apart by one coordinate only (the other is noise 10x
    larger): meta-training must learn to look at the right coordinate, on classes it never saw."""
    from tunewright.meta.core import EpisodeSampler

    g = torch.Generator().manual_seed(0)
    classes = 12
    centres = torch.arange(classes).float() * 1.0
    y = torch.arange(classes).repeat_interleave(20)
    x = torch.stack([centres[y] + 0.1 * torch.randn(len(y), generator=g), 10 * torch.randn(len(y), generator=g)], 1)
    net = _net(d_in=2, d=2)
    train = EpisodeSampler(y.numpy(), range(0, 12, 2), 3, 2, 4, seed=0)
    test = EpisodeSampler(y.numpy(), range(1, 12, 2), 3, 2, 4, seed=1)
    algo = ALGORITHMS["protonet"]

    def score():
        eps = [test.episode(i) for i in range(100)]
        st = lambda j, t: torch.stack([x[e[j]] if t else torch.from_numpy(e[j]) for e in eps])
        return float(episode_accuracy(algo, net, {n: p.detach() for n, p in net.named_parameters()},
                                      st(0, 1), st(1, 0), st(2, 1), st(3, 0), n_way=3, inner_lr=0, steps=0).mean())

    before = score()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for i in range(150):
        e = train.episode(i)
        loss = episode_losses(algo, net, dict(net.named_parameters()), x[e[0]][None], torch.from_numpy(e[1])[None],
                              x[e[2]][None], torch.from_numpy(e[3])[None], n_way=3, inner_lr=0, steps=0)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    after = score()
    assert after > before + 0.2, (before, after)


def test_an_unknown_algorithm_fails_at_config_load_naming_the_key(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("meta:\n  algorithm: protonets\n")
    with pytest.raises(ConfigError, match=r"meta.algorithm.*'protonets'.*Did you mean 'protonet'"):
        load_config(p)
    with pytest.raises(ConfigError, match="meta.algorithm"):
        get_algorithm("reptile")
