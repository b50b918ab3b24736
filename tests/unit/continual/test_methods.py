"""The continual method objects: the Fisher EWC anchors with, online EWC's decayed update, replay's
mixing and LwF's distillation, each against a value computed by hand."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from tunewright.config.load import config_from_dict
from tunewright.continual.core import Reservoir, diagonal_fisher, lwf_loss
from tunewright.continual.methods import EWC, LwF, OnlineEWC, Replay, fisher_batches
from tunewright.data.examples import Examples, stack_collate
from tunewright.training.fit_examples import cross_entropy, fit_examples


class Linear(nn.Module):
    """A tiny batch-dict model: logits = W x + b, (B, 3)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3)

    def forward(self, batch):
        return self.lin(batch["inputs"])


def _examples(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Examples(inputs=torch.randn(n, 4, generator=g), labels=torch.randint(0, 3, (n,), generator=g))


def _fisher_by_loop(model, batches):
    """(1/N) sum_n g_n^2, one backward per example: the definition, computed the slow way."""
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    count = 0
    for batch in batches:
        for i in range(len(batch["labels"])):
            one = {k: v[i:i + 1] for k, v in batch.items()}
            model.zero_grad()
            cross_entropy(model(one), one).backward()
            for n, p in model.named_parameters():
                total[n] += p.grad ** 2
            count += 1
    model.zero_grad()
    return {n: t / count for n, t in total.items()}


def test_fisher_is_the_mean_of_per_example_squared_gradients():
    model, data = Linear(), _examples()
    batches = [stack_collate([data[i] for i in range(s, s + 4)]) for s in (0, 4, 8)]
    fisher = diagonal_fisher(model, batches, cross_entropy)
    expected = _fisher_by_loop(model, batches)
    assert set(fisher) == {"lin.weight", "lin.bias"}
    for n in expected:
        assert torch.allclose(fisher[n], expected[n], rtol=1e-5, atol=1e-8), n
    # The square of each batch's mean gradient is smaller (by the gradient's variance in the batch):
    # the estimate this replaced, which underestimated F.
    model.zero_grad()
    batch_mean = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for b in batches:
        model.zero_grad()
        cross_entropy(model(b), b).backward()
        for n, p in model.named_parameters():
            batch_mean[n] += p.grad ** 2 / len(batches)
    assert all(float(batch_mean[n].sum()) < 0.8 * float(expected[n].sum()) for n in expected)


def test_fisher_leaves_out_frozen_parameters_and_keeps_the_train_mode():
    model = Linear()
    model.lin.bias.requires_grad_(False)
    model.train()
    fisher = diagonal_fisher(model, [stack_collate([_examples()[i] for i in range(6)])], cross_entropy)
    assert set(fisher) == {"lin.weight"} and model.training


def test_ewc_anchors_the_weights_after_each_task_with_that_tasks_fisher():
    model, ewc = Linear(), EWC(lam=4.0, n_batches=2, batch_size=4, seed=7)
    tasks = [_examples(seed=1), _examples(seed=2)]
    fishers, weights = [], []
    for t, train in enumerate(tasks):
        with torch.no_grad():
            model.lin.weight.add_(0.5 * t)                           # "training" task t
        ewc.on_task_end(model, train, t)
        fishers.append(_fisher_by_loop(model, fisher_batches(train, 4, 2, 7 + t)))
        weights.append({n: p.detach().clone() for n, p in model.named_parameters()})
    assert len(ewc.anchors) == 2                                     # plain EWC: one anchor per task
    for (anchor, fisher), w, f in zip(ewc.anchors, weights, fishers):
        assert all(torch.equal(anchor[n], w[n]) for n in w)
        assert all(torch.allclose(fisher[n], f[n], rtol=1e-5, atol=1e-8) for n in f)
    # loss + lam/2 sum_k sum_i F_k (w - w*_k)^2
    with torch.no_grad():
        model.lin.bias.add_(1.0)
    params = {n: p.detach() for n, p in model.named_parameters()}
    expected = 2.0 * sum(float((f[n] * (params[n] - w[n]) ** 2).sum()) for w, f in zip(weights, fishers) for n in f)
    out = ewc.on_loss(SimpleNamespace(model=model), torch.tensor(0.0), batch={})
    assert float(out.detach()) == pytest.approx(expected, rel=1e-5) and expected > 0


def test_online_ewc_keeps_one_anchor_with_the_gamma_decayed_fisher():
    model, ewc = Linear(), OnlineEWC(lam=1.0, gamma=0.5, n_batches=3, batch_size=4, seed=0)
    tasks = [_examples(seed=1), _examples(seed=2), _examples(seed=3)]
    expected = None
    for t, train in enumerate(tasks):
        with torch.no_grad():
            model.lin.weight.mul_(1.5)                               # "training" task t
        f_new = _fisher_by_loop(model, fisher_batches(train, 4, 3, t))
        expected = f_new if expected is None else {n: 0.5 * expected[n] + f_new[n] for n in f_new}
        ewc.on_task_end(model, train, t)
        assert len(ewc.anchors) == 1
        anchor, fisher = ewc.anchors[0]
        assert torch.equal(anchor["lin.weight"], model.lin.weight)  # the latest weights
        for n in expected:                                           # F = gamma F_old + F_new
            assert torch.allclose(fisher[n], expected[n], rtol=1e-5, atol=1e-8), (t, n)


def _ctx(epoch):
    return SimpleNamespace(state=SimpleNamespace(epoch=epoch))


def test_replay_appends_buffer_examples_to_the_batch_and_fills_the_buffer_in_the_first_epoch():
    old = [{"inputs": torch.full((4,), 100.0 + i), "labels": torch.tensor(0), "task": torch.tensor(0)}
           for i in range(6)]
    buffer = Reservoir(10, seed=0)
    for item in old:
        buffer.add(item)
    replay = Replay(buffer, k=3)
    new = _examples(n=5)
    batch = {**stack_collate([new[i] for i in range(5)]), "task": torch.ones(5, dtype=torch.long)}
    replay.on_batch_start(_ctx(0), batch)
    assert batch["inputs"].shape == (8, 4) and batch["labels"].shape == (8,) and batch["task"].shape == (8,)
    assert torch.equal(batch["inputs"][:5], new.columns["inputs"])            # the batch itself, first
    replayed = {float(x[0]) for x in batch["inputs"][5:]}
    assert len(replayed) == 3 and replayed <= {100.0 + i for i in range(6)}   # then 3 stored examples
    assert batch["task"][5:].tolist() == [0, 0, 0]
    assert len(buffer) == 10 and buffer.seen == 11                             # the 5 new ones were offered
    batch2 = {**stack_collate([new[i] for i in range(5)]), "task": torch.ones(5, dtype=torch.long)}
    replay.on_batch_start(_ctx(1), batch2)                                     # a later epoch: mixes, offers nothing
    assert batch2["inputs"].shape == (8, 4) and buffer.seen == 11


def test_replay_shows_the_previous_task_to_the_model_while_it_trains_the_next():
    seen_tasks = []

    class Spy(Linear):
        def forward(self, batch):
            seen_tasks.append(batch["task"].tolist())
            return super().forward(batch)

    cfg = config_from_dict({"train": {"epochs": 1, "batch_size": 4, "lr": 1e-2, "log_every_steps": 100}})
    model, replay = Spy(), Replay(Reservoir(8, seed=0), k=2)
    for t in range(2):
        data = _examples(n=8, seed=t)
        fit_examples(model, Examples(**data.columns, task=torch.full((8,), t)), cfg, callbacks=[replay], seed=t)
    first, second = seen_tasks[:2], seen_tasks[2:]
    assert all(set(b) == {0} for b in first)                        # nothing stored yet: only task 0
    assert len(second) == 2 and all(len(b) == 6 and b[:4] == [1] * 4 for b in second)   # 4 new + 2 stored
    assert second[0][4:] == [0, 0]                                  # the buffer held task 0 only then


def test_lwf_distils_the_model_as_it_was_when_the_task_started_on_the_old_classes():
    class Model(nn.Module):                                         # ContinualModel's contract: all_logits
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 6)
            self.last_all_logits = None

        def all_logits(self, batch):
            return self.lin(batch["inputs"])                        # (B, 6)

        def forward(self, batch):
            self.last_all_logits = self.all_logits(batch)
            return self.last_all_logits

    torch.manual_seed(0)
    model, lwf = Model(), LwF([[0, 1], [2, 3], [4, 5]], alpha=0.7, temperature=2.0)
    batch = {"inputs": torch.randn(5, 4)}
    ctx = SimpleNamespace(model=model)
    lwf.on_task_start(model, 0)
    with torch.no_grad():                                           # as the driver's evaluation leaves it
        model(batch)
    loss = torch.tensor(1.0)
    assert lwf.on_loss(ctx, loss, batch) is loss                    # task 0: nothing to remember
    lwf.on_task_start(model, 2)                                     # task 2: old classes 0..3
    before = model.lin(batch["inputs"]).detach()
    with torch.no_grad():
        model.lin.weight.add_(torch.randn(6, 4))                    # training moves the model
    new = model(batch)
    out = lwf.on_loss(ctx, loss, batch).detach()
    expected = 1.0 + 0.7 * lwf_loss(new[:, :4].detach(), before[:, :4], 2.0)
    assert float(out) == pytest.approx(float(expected), rel=1e-6)
    assert float(out) > 1.01                                        # the outputs did move
    assert not any(p.requires_grad for p in lwf.old.parameters())   # the snapshot is frozen
    # and the snapshot is a copy: it did not move with the model
    assert torch.equal(lwf.old.all_logits(batch), before)
