"""The loop on a tiny MLP: non-finite steps, accumulation, early stopping, events, determinism."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tunewright.config import Config
from tunewright.errors import TrainingError
from tunewright.optim import build_optimizer, build_scheduler, param_groups
from tunewright.training.callbacks import CallbackList, EarlyStopping
from tunewright.training.events import EVENTS
from tunewright.training.loop import fit
from tunewright.training.losses import loss_for
from tunewright.training.precision import Precision


def batches(n, batch_size, seed, epoch, lengths=None, weights=None):
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i:i + batch_size].tolist() for i in range(0, n, batch_size)]


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                       torch.nn.Linear(16, 3))

    def forward(self, batch):
        return self.net(batch["inputs"])


def data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return [{"inputs": x[i], "labels": y[i]} for i in range(n)]


def collate(rows):
    return {"inputs": torch.stack([r["inputs"] for r in rows]), "labels": torch.stack([r["labels"] for r in rows])}


def setup(**train):
    torch.manual_seed(0)
    cfg = Config()
    cfg.data.bucket = False
    cfg.train.progress = "none"
    for k, v in train.items():
        setattr(cfg.train, k, v)
    model = Model()
    opt = build_optimizer(param_groups(model, cfg.train.lr, 0.0), "adamw", cfg.train.lr)
    sched = build_scheduler(opt, "constant", 100, 0.0)
    return cfg, model, opt, sched


def run(cfg, model, opt, sched, ds=None, **kw):
    return fit(model, ds or data(), collate, opt, sched, cfg, loss_fn=loss_for("classification"),
               precision=Precision(torch.device("cpu"), None), epoch_batches=batches, **kw)


def test_trains_and_counts_steps():
    cfg, model, opt, sched = setup(epochs=3, batch_size=16, lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    state = run(cfg, model, opt, sched)
    assert state.step == 12 and state.epoch == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_same_seed_same_weights():
    a = setup(epochs=2, batch_size=8, lr=1e-2)
    run(*a)
    b = setup(epochs=2, batch_size=8, lr=1e-2)
    run(*b)
    assert all(torch.equal(p, q) for p, q in zip(a[1].parameters(), b[1].parameters()))


def test_grad_accum_matches_big_batch_without_dropout():
    def go(bs, accum):
        cfg, model, opt, sched = setup(epochs=1, batch_size=bs, grad_accum=accum, lr=1e-2, max_grad_norm=None)
        model.net[2].p = 0.0
        ds = data(32)
        run(cfg, model, opt, sched, ds=ds)
        return model
    # Same examples per step in the same order: 1 batch of 32 vs 4 micro-batches of 8.
    big, small = go(32, 1), go(8, 4)
    for p, q in zip(big.parameters(), small.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_nonfinite_step_is_skipped_and_weights_unchanged():
    cfg, model, opt, sched = setup(epochs=1, batch_size=64, lr=1e-2, max_nonfinite_steps=3)
    ds = data()
    ds[0] = {"inputs": torch.full((4,), float("nan")), "labels": ds[0]["labels"]}
    before = [p.detach().clone() for p in model.parameters()]
    seen = []

    class Spy:
        def on_nonfinite(self, ctx, loss, grad_norm):
            seen.append(loss)
    state = run(cfg, model, opt, sched, ds=ds, callbacks=[Spy()])
    assert state.nonfinite_total == 1 and state.step == 0 and len(seen) == 1 and math.isnan(seen[0])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_too_many_nonfinite_steps_raise():
    cfg, model, opt, sched = setup(epochs=1, batch_size=8, lr=1e-2, max_nonfinite_steps=2)
    ds = [{"inputs": torch.full((4,), float("nan")), "labels": r["labels"]} for r in data()]
    with pytest.raises(TrainingError, match="2 non-finite steps in a row"):
        run(cfg, model, opt, sched, ds=ds)


def test_early_stopping_and_best_tracking():
    cfg, model, opt, sched = setup(epochs=10, batch_size=32, lr=1e-2)
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.59, 0.9])
    state = run(cfg, model, opt, sched, evaluate=lambda: {"val": {"accuracy": next(scores)}},
                callbacks=[EarlyStopping(patience=3)])
    assert state.best_metric == 0.6 and state.best_epoch == 2 and state.epoch == 5
    assert "early stopping" in state.stop_reason


def test_max_steps_stops_mid_epoch():
    cfg, model, opt, sched = setup(epochs=5, batch_size=8, max_steps=3)
    state = run(cfg, model, opt, sched)
    assert state.step == 3 and state.epoch == 0 and state.batch_in_epoch == 3


def test_events_fire_in_documented_order():
    cfg, model, opt, sched = setup(epochs=1, batch_size=32, log_every_steps=1)
    calls = []

    class Recorder:
        def __getattr__(self, name):
            if name in EVENTS:
                return lambda ctx, *a, **k: calls.append(name)
            raise AttributeError(name)
    run(cfg, model, opt, sched, evaluate=lambda: {"val": {"accuracy": 0.1}}, callbacks=[Recorder()])
    assert calls[0] == "on_fit_start" and calls[-1] == "on_fit_end"
    first_step = calls[calls.index("on_batch_start"):calls.index("on_step_end") + 1]
    assert first_step == ["on_batch_start", "on_loss", "on_after_backward", "on_before_optimizer_step",
                          "on_after_optimizer_step", "on_log", "on_step_end"]
    assert calls.index("on_evaluate") < calls.index("on_epoch_end")


def test_on_loss_can_add_a_penalty():
    cfg, model, opt, sched = setup(epochs=1, batch_size=64, lr=1e-2)
    losses = []

    class Penalty:
        def on_loss(self, ctx, loss, batch):
            return loss + 100.0

    class Spy:
        def on_log(self, ctx, row):
            losses.append(row["loss"])
    run(cfg, model, opt, sched, callbacks=[Penalty(), Spy()])
    assert losses and losses[0] > 100.0


def test_malloc_trim_runs_every_n_steps_and_only_where_it_exists():
    from tunewright.training.callbacks import MallocTrim
    calls = []
    trim = MallocTrim(4, libc=SimpleNamespace(malloc_trim=lambda pad: calls.append(pad) or 1))
    cfg, model, opt, sched = setup(epochs=3, batch_size=16, lr=1e-2)   # 12 steps
    run(cfg, model, opt, sched, callbacks=[trim])
    assert calls == [0, 0, 0]                                            # steps 4, 8, 12
    assert not MallocTrim(1, libc=SimpleNamespace()).available          # no malloc_trim: a no-op
    assert MallocTrim(1).available == hasattr(__import__("ctypes").CDLL(None), "malloc_trim")


def test_logged_loss_is_the_mean_of_the_window_losses_and_grad_norm_is_logged():
    cfg, model, opt, sched = setup(epochs=1, batch_size=8, log_every_steps=4)
    losses, rows = [], []

    class Spy:
        def on_loss(self, ctx, loss, batch):
            losses.append(float(loss))
            return loss

        def on_log(self, ctx, row):
            rows.append(dict(row))
    run(cfg, model, opt, sched, callbacks=[Spy()])
    assert [r["step"] for r in rows] == [4, 8]
    for k, r in enumerate(rows):
        assert r["loss"] == pytest.approx(sum(losses[4 * k:4 * k + 4]) / 4, rel=1e-6)
        assert isinstance(r["grad_norm"], float) and r["grad_norm"] > 0


@pytest.mark.parametrize("device,cudnn,expect_off", [("cuda", False, True), ("cuda", True, False), ("cpu", False, False)])
def test_autocast_keeps_attention_off_cudnn_on_cuda_unless_asked(device, cudnn, expect_off):
    # Flags only: entering the context needs no GPU. cuDNN attention builds a graph per new sequence length.
    before = torch.backends.cuda.cudnn_sdp_enabled()
    with Precision(torch.device(device), None, cudnn).autocast():
        inside = torch.backends.cuda.cudnn_sdp_enabled()
    assert inside is (not expect_off and before)
    assert torch.backends.cuda.cudnn_sdp_enabled() is before


def test_malloc_trim_default_is_every_step_on_cpu_and_off_on_gpu():
    from tunewright.training.callbacks import MallocTrim
    assert Config().train.malloc_trim_every is None
    assert MallocTrim.resolve_every(None, torch.device("cpu")) == 1
    assert MallocTrim.resolve_every(None, torch.device("cuda")) == 0
    assert MallocTrim.resolve_every(0, torch.device("cpu")) == 0 and MallocTrim.resolve_every(7, torch.device("cuda")) == 7
