"""Loss-spike rollback (training/spike.py) and the loop's rewind (training/rewind.py), on a tiny MLP.

A spike is made deterministically: `SpikeAt` multiplies the loss of one step by 1000. With 64 rows,
batch 8 and checkpoints every 4 steps, the 14th step (state.step == 13 before it) spikes and the run
goes back to the checkpoint of step 12.
"""
import shutil

import numpy as np
import pytest
import torch

from tunewright.config import Config, config_from_dict
from tunewright.errors import ConfigError
from tunewright.optim import build_optimizer, build_scheduler, param_groups
from tunewright.training.callbacks import CallbackList, Checkpointer
from tunewright.training.checkpoint import list_checkpoints, load_checkpoint
from tunewright.training.loop import TrainState, fit
from tunewright.training.losses import loss_for
from tunewright.training.precision import Precision
from tunewright.training.spike import LossSpikeRollback, is_spike, scale_lr, spike_callbacks

LR, TOTAL = 1e-2, 100          # a linear schedule over 100 steps: the LR is still well above 0 at step 32


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


def setup(epochs=4):
    torch.manual_seed(0)
    cfg = Config()
    cfg.data.bucket = False
    cfg.train.progress, cfg.train.epochs, cfg.train.batch_size, cfg.train.lr = "none", epochs, 8, LR
    model = Model()
    opt = build_optimizer(param_groups(model, LR, 0.0), "adamw", LR)
    return cfg, model, opt, build_scheduler(opt, "linear", TOTAL, 0.0)


def run(cfg, model, opt, sched, callbacks, state=None):
    return fit(model, data(), collate, opt, sched, cfg, loss_fn=loss_for("classification"),
               precision=Precision(torch.device("cpu"), None), epoch_batches=batches, callbacks=callbacks,
               state=state)


class SpikeAt:
    """Multiplies the loss of the step taken when state.step == `at` by 1000, the first `times` times."""

    def __init__(self, at, times=1):
        self.at, self.times = at, times

    def on_loss(self, ctx, loss, batch):
        if ctx.state.step == self.at and self.times > 0:
            self.times -= 1
            return loss * 1000.0
        return None


class LowerLRAt:
    """The reference: what a rollback to step `at` should amount to, done without any spike."""

    def __init__(self, at):
        self.at, self.done = at, False

    def on_step_end(self, ctx):
        if ctx.state.step == self.at and not self.done:
            scale_lr(ctx.optimizer, ctx.scheduler, 0.5)
            self.done = True


def callbacks(root, *extra, rows=None, keep_last=10, every=4, **spike):
    rows = [] if rows is None else rows
    cbs = CallbackList([*extra, LossSpikeRollback(root, **{"factor": 10.0, "window": 5, **spike}, log=rows.append)])
    cbs.callbacks.append(Checkpointer(root, every, keep_last, cbs))
    return cbs, rows


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def expected_lr(step, factor):
    """The schedule's LR after `step` scheduler steps, times `factor`."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = build_scheduler(opt, "linear", TOTAL, 0.0)
    for _ in range(step):
        opt.step()
        sched.step()
    return opt.param_groups[0]["lr"] * factor


# ------------------------------------------------------------------ the pure functions

@pytest.mark.parametrize("loss,history,k,min_history,want", [
    (5.0, [1.0, 1.0, 1.0], 3.0, 1, True),
    (3.0, [1.0, 1.0, 1.0], 3.0, 1, False),          # equal to k x median is not over it
    (5.0, [1.0, 100.0, 1.0], 3.0, 1, True),         # the median ignores one earlier spike
    (5.0, [], 3.0, 1, False),                       # nothing to compare with
    (5.0, [1.0, 1.0], 3.0, 3, False),               # history not full yet
    (5.0, [0.0, 0.0, 0.0], 3.0, 1, False),          # median 0: no ratio
    (5.0, [-1.0, -2.0, -1.0], 3.0, 1, False),       # negative losses: no ratio
    (float("nan"), [1.0], 3.0, 1, False),           # non-finite: the loop skips those steps itself
    (float("inf"), [1.0], 3.0, 1, False),
])
def test_is_spike(loss, history, k, min_history, want):
    assert is_spike(loss, history, k, min_history) is want


def test_scale_lr_keeps_the_schedule_shape_at_the_lower_level():
    ref = [expected_lr(s, 1.0) for s in range(10)]
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = build_scheduler(opt, "linear", TOTAL, 0.0)
    for _ in range(3):
        opt.step()
        sched.step()
    scale_lr(opt, sched, 0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(ref[3] * 0.5) and sched.get_last_lr()[0] == opt.param_groups[0]["lr"]
    for s in range(4, 10):
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(ref[s] * 0.5)     # not undone by the next step
    assert opt.param_groups[0]["initial_lr"] == pytest.approx(LR * 0.5)


# ------------------------------------------------------------------ the callback in the loop

def test_a_spike_rolls_back_to_the_checkpoint_and_continues_at_half_the_lr(tmp_path, capsys):
    cfg, model, opt, sched = setup()
    seen = []

    class Spy:
        def on_rewind(self, ctx):
            seen.append((ctx.state.step, ctx.state.epoch, ctx.state.batch_in_epoch, ctx.optimizer.param_groups[0]["lr"]))

    cbs, rows = callbacks(tmp_path / "ck", SpikeAt(13), Spy())
    state = run(cfg, model, opt, sched, cbs)

    # The loop went back to step 12 (epoch 1, batch 4 of 8); the LR was lowered after the restore.
    assert seen == [(12, 1, 4, pytest.approx(expected_lr(12, 1.0)))]
    assert state.step == 32 and state.epoch == 4
    assert opt.param_groups[0]["lr"] == pytest.approx(expected_lr(32, 0.5))
    (row,) = rows
    assert row["event"] == "rollback" and row["step"] == 14 and row["to_step"] == 12 and row["rollback"] == 1
    assert row["loss"] > 10 * row["median"] and row["lr"] == pytest.approx(expected_lr(12, 0.5))
    assert "loss spike at step 14" in capsys.readouterr().err

    # Bit for bit what training to step 12, then halving the LR, gives: the spiking step left no trace.
    cfg, ref, ropt, rsched = setup()
    run(cfg, ref, ropt, rsched, [LowerLRAt(12)])
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ref.parameters()))


@pytest.mark.parametrize("resume_at", [12, 20])
def test_a_run_resumed_after_a_rollback_ends_as_the_uninterrupted_one(tmp_path, resume_at):
    """From the checkpoint after the rollback (20: lower LR, one rollback counted) and from the one it went
    back to (12: the replay spikes again and rolls back again, the same way)."""
    cfg, model, opt, sched = setup()
    cbs, rows = callbacks(tmp_path / "ck", SpikeAt(13))
    run(cfg, model, opt, sched, cbs)

    root = tmp_path / "resumed"
    root.mkdir()
    shutil.copytree(tmp_path / "ck" / f"step-{resume_at:06d}", root / f"step-{resume_at:06d}")
    cfg, model2, opt2, sched2 = setup()
    torch.manual_seed(123)                                     # the checkpoint's RNG must win
    cbs2, rows2 = callbacks(root, SpikeAt(13))
    saved = load_checkpoint(root / f"step-{resume_at:06d}", model=model2, optimizer=opt2, scheduler=sched2)
    cbs2.load_state_dict(saved["callbacks"])
    assert cbs2.callbacks[-2].rollbacks == (1 if resume_at == 20 else 0)
    state = run(cfg, model2, opt2, sched2, cbs2, state=TrainState.from_dict(saved["loop"]))
    assert state.step == 32
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))
    assert opt2.param_groups[0]["lr"] == pytest.approx(expected_lr(32, 0.5))
    assert cbs2.callbacks[-2].rollbacks == 1
    assert [r["event"] for r in rows2] == ([] if resume_at == 20 else ["rollback"])


def test_a_spike_before_any_checkpoint_is_logged_and_the_run_continues(tmp_path, capsys):
    cfg, model, opt, sched = setup()
    cbs, rows = callbacks(tmp_path / "ck", SpikeAt(6), window=3)     # checkpoints at 4, 8: 4 is before step 6
    cbs.callbacks[-1].every_steps = 8
    run(cfg, model, opt, sched, cbs)
    (row,) = rows
    assert row["event"] == "spike" and row["step"] == 7 and "no checkpoint" in row["action"]
    assert "no valid checkpoint before step 6" in capsys.readouterr().err
    assert opt.param_groups[0]["lr"] == pytest.approx(expected_lr(32, 1.0))


def test_a_spike_right_after_a_save_goes_back_one_checkpoint_further(tmp_path):
    """Going back to the checkpoint of this very step would replay the same batch on the same weights with
    the same RNG and spike again. The abandoned checkpoint 12 is deleted, then written again on the replay."""
    cfg, model, opt, sched = setup()
    at_rewind = []

    class Spy:
        def on_rewind(self, ctx):
            at_rewind.append([p.name for p in list_checkpoints(tmp_path / "ck")])

    cbs, rows = callbacks(tmp_path / "ck", SpikeAt(12), Spy())
    run(cfg, model, opt, sched, cbs)
    assert [(r["event"], r["to_step"]) for r in rows] == [("rollback", 8)]
    assert at_rewind == [["step-000004", "step-000008"]]     # a crash now resumes the rewound run, not the old one
    assert [p.name for p in list_checkpoints(tmp_path / "ck")][:3] == ["step-000004", "step-000008", "step-000012"]
    cfg, m, o, s = setup()
    load_checkpoint(tmp_path / "ck" / "step-000012", model=m, optimizer=o, scheduler=s)
    assert o.param_groups[0]["lr"] == pytest.approx(expected_lr(12, 0.5))   # the replayed step 12, not the old one


def test_after_max_rollbacks_the_next_spike_rolls_back_and_stops(tmp_path, capsys):
    cfg, model, opt, sched = setup()
    cbs, rows = callbacks(tmp_path / "ck", SpikeAt(13, times=99), max_rollbacks=2)
    state = run(cfg, model, opt, sched, cbs)
    assert [r["event"] for r in rows] == ["rollback", "rollback", "rollback_and_stop"]
    assert [r["lr_scale"] for r in rows] == [0.5, 0.25, 0.25]
    assert len({r["loss"] for r in rows}) == 3                # each retry replayed at a lower LR than the last
    assert state.should_stop and state.step == 12 and "train.max_rollbacks" in state.stop_reason
    assert opt.param_groups[0]["lr"] == pytest.approx(expected_lr(12, 0.25))
    assert "points at the data" in capsys.readouterr().err
    saved = load_checkpoint(list_checkpoints(tmp_path / "ck")[-1], model=Model())
    assert saved["loop"]["step"] == 12 and saved["callbacks"]["LossSpikeRollback"]["rollbacks"] == 2


def test_off_by_default_and_silent_when_no_spike(tmp_path):
    assert Config().train.spike_factor is None and spike_callbacks(Config().train, tmp_path) == []
    assert not {"step_loss", "rewind_to"} & set(TrainState().to_dict())   # checkpoints hold what they held
    cfg, a, opt, sched = setup()
    run(cfg, a, opt, sched, [])
    cfg, b, opt, sched = setup()
    cbs, rows = callbacks(tmp_path / "ck", factor=1e9)
    run(cfg, b, opt, sched, cbs)
    assert rows == [] and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


class RewindAt:
    """Any callback may ask for a rewind: this one goes back to checkpoint `to` when state.step == `at`, once."""

    def __init__(self, root, at, to):
        self.root, self.at, self.to, self.done = root, at, to, False

    def on_before_optimizer_step(self, ctx):
        if ctx.state.step == self.at and not self.done:
            self.done = True
            ctx.state.rewind_to = str(self.root / f"step-{self.to:06d}")


def test_a_rewind_that_changes_nothing_replays_bit_identically(tmp_path):
    """Weights, optimizer, scheduler, RNG and position all come back: the replay of steps 9-10 is exact."""
    cfg, a, opt, sched = setup()
    run(cfg, a, opt, sched, [])
    cfg, b, opt, sched = setup()
    cbs = CallbackList([RewindAt(tmp_path / "ck", at=10, to=8)])
    cbs.callbacks.append(Checkpointer(tmp_path / "ck", 4, 10, cbs))
    state = run(cfg, b, opt, sched, cbs)
    assert cbs.callbacks[0].done and state.step == 32
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_a_rewind_to_a_checkpoint_without_a_loop_position_names_the_file(tmp_path):
    from tunewright.errors import CheckpointError
    from tunewright.training.checkpoint import save_checkpoint
    cfg, model, opt, sched = setup()
    save_checkpoint(tmp_path / "ck", 8, model=model, optimizer=opt, scheduler=sched, trainer_state={"loop": [8]})
    with pytest.raises(CheckpointError, match=r"step-000008/state.json: trainer_state holds no loop position"):
        run(cfg, model, opt, sched, [RewindAt(tmp_path / "ck", at=2, to=8)])


@pytest.mark.parametrize("key,value", [("spike_factor", 1.0), ("spike_factor", -2), ("spike_lr_factor", 1.0),
                                       ("spike_lr_factor", 0), ("spike_window", 0), ("max_rollbacks", -1)])
def test_bad_spike_options_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"train.{key}"):
        config_from_dict({"train": {key: value}})
