"""Gradual unfreezing survives resume: a run interrupted mid-epoch and resumed keeps the groups it had
unfrozen (Lightning issue #21901 re-freezes them) and ends bit-identical to an uninterrupted run."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tunewright.models import TaskModel
from tunewright.run import train
from tunewright.strategies.groups import GroupIndex, strategy_groups
from tunewright.strategies.unfreezing import GradualUnfreezing


class Crash:
    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_batch_start(self, ctx, batch):
        if ctx.state.step == self.at_step:
            raise KeyboardInterrupt(f"simulated crash at step {self.at_step}")


class Flags:
    """requires_grad of every parameter at the end of each epoch."""

    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, ctx):
        self.epochs.append({n: p.requires_grad for n, p in ctx.model.named_parameters()})


def last_checkpoint(run_dir: Path) -> tuple[dict, dict]:
    ckpt = sorted((run_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    return load_file(str(ckpt / "model.safetensors")), json.loads((ckpt / "state.json").read_text())


def test_resumed_gradual_unfreezing_equals_uninterrupted(tmp_path, tw_models):
    cfg = tw_models.config("bert", tmp_path)
    cfg.update(strategy="gradual_unfreezing", strategy_options={"layer_lr": "ulmfit"})
    cfg["train"].update(epochs=3, schedule="slanted_triangular")
    cfg["checkpoint"] = {"every_steps": 2, "keep_last": 1}

    whole, flags_whole = dict(cfg, run_name="whole"), Flags()
    train(whole, callbacks=[flags_whole])
    resumed, flags_resumed = dict(cfg, run_name="resumed"), Flags()
    # 4 steps per epoch: checkpoint at step 6 (epoch 1, two groups unfrozen), crash at step 7.
    with pytest.raises(KeyboardInterrupt):
        train(resumed, callbacks=[Crash(7)])
    train(resumed, resume=True, callbacks=[flags_resumed])

    a, state_a = last_checkpoint(tmp_path / "runs" / "whole")
    b, state_b = last_checkpoint(tmp_path / "runs" / "resumed")
    assert state_a["step"] == state_b["step"] == 12
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    cb_a = state_a["trainer_state"]["callbacks"]["GradualUnfreezing"]
    assert cb_a == state_b["trainer_state"]["callbacks"]["GradualUnfreezing"] == {"unfrozen": 3, "bad": 0}
    # After the resume, epochs 1 and 2 trained the groups the original run had unfrozen.
    assert flags_resumed.epochs == flags_whole.epochs[1:]
    assert flags_resumed.epochs[0]["backbone.encoder.layer.1.output.dense.weight"]


def small() -> TaskModel:
    return TaskModel(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4)), nn.Linear(4, 2), task="classification",
                     num_labels=2, modality="tensor", pooling=None, hidden_size=4, source={"type": "factory"})


def test_plateau_unfreezing_state_is_restored():
    model = small()
    index = GroupIndex(strategy_groups(model))
    assert index.order == ["block.0", "block.1", "head"]
    cb = GradualUnfreezing(model, index, on_plateau=True, patience=1, log=lambda m: None)

    class Ctx:
        class state:
            improved, step, epoch = False, 5, 1
    cb.on_fit_start(Ctx)
    cb.on_evaluate(Ctx, {})                         # no improvement: one more group
    assert cb.training_groups() == ["block.1", "head"]
    saved = cb.state_dict()

    fresh = small()
    cb2 = GradualUnfreezing(fresh, GroupIndex(strategy_groups(fresh)), on_plateau=True, log=lambda m: None)
    cb2.load_state_dict(saved)
    cb2.on_fit_start(Ctx)                           # what a resumed run does first
    cb2.on_epoch_start(Ctx)
    assert {n for n, p in fresh.named_parameters() if p.requires_grad} == {"backbone.1.weight", "backbone.1.bias",
                                                                            "head.weight", "head.bias"}
