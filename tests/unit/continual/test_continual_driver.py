import copy

import pytest
import torch
from torch import nn

from tunewright.config.load import config_from_dict
from tunewright.continual.driver import ContinualModel, load_tasks, run_sequence
from tunewright.continual.methods import METHODS
from tunewright.data.examples import Examples
from tunewright.errors import ConfigError
from tunewright.evaluate.predict import accuracy


def _tasks(n=32, m=16):
    """3 tasks of 2 classes each: task t's label is x[:, t] > 0, classes (2t, 2t + 1)."""
    g = torch.Generator().manual_seed(0)
    tasks = []
    for t in range(3):
        x = torch.randn(n + m, 6, generator=g)
        y = (x[:, t] > 0).long() + 2 * t
        tasks.append((Examples(inputs=x[:n], labels=y[:n], task=torch.full((n,), t)),
                      Examples(inputs=x[n:], labels=y[n:], task=torch.full((m,), t))))
    return tasks, [[0, 1], [2, 3], [4, 5]], 6


def _cfg(method, **continual):
    return config_from_dict({"model": {"name": "tunewright.zoo:mlp_trunk", "factory_kwargs": {"in_features": 6,
                                                                                              "hidden": 8}},
                             "train": {"epochs": 1, "batch_size": 16, "lr": 1e-2},
                             "continual": {"method": method, "buffer_size": 8, "replay_batch": 4,
                                           "fisher_batches": 2, **continual}})


def _learnable_cfg(method, scenario):
    return config_from_dict({"model": {"name": "tunewright.zoo:mlp_trunk",
                                       "factory_kwargs": {"in_features": 6, "hidden": 16}},
                             "train": {"epochs": 3, "batch_size": 16, "lr": 3e-2},
                             "continual": {"method": method, "scenario": scenario}})


def test_every_method_runs_and_adapters_cannot_forget():
    for method in METHODS:
        out = run_sequence(_cfg(method), loaded=_tasks())
        R = out["R"]
        assert out["method"] == method
        assert len(R) == 3 and len(R[0]) == 3
        if method == "adapters":      # earlier tasks' accuracies never change
            assert out["scenario"] == "task"
            for j in range(3):
                assert all(R[i][j] == R[j][j] for i in range(j, 3)), R


class Recorder:
    """A method object that records the driver's calls and keeps the model after each task."""
    name, needs_task_id, adapter_dim = "recorder", False, None

    def __init__(self):
        self.calls, self.after = [], []

    def on_task_start(self, model, t):
        self.calls.append(("start", t))
        self.model = model

    def on_loss(self, ctx, loss, batch):
        if self.calls[-1][0] != "loss":
            self.calls.append(("loss", int(batch["task"][0])))
        return loss

    def on_task_end(self, model, train, t):
        self.calls.append(("end", t, len(train)))
        self.after.append({k: v.clone() for k, v in model.state_dict().items()})


def test_the_driver_calls_the_method_hooks_around_each_task_and_R_is_the_accuracy_after_each_task():
    rec = Recorder()
    loaded = _tasks(n=96, m=64)
    tasks = loaded[0]
    out = run_sequence(_learnable_cfg("naive", "task"), method=rec, loaded=loaded)
    assert rec.calls == [c for t in range(3) for c in (("start", t), ("loss", t), ("end", t, 96))]
    assert out["method"] == "recorder"
    # R[i][j] is task j's test accuracy of the model as it was after task i
    model = copy.deepcopy(rec.model)
    for i, weights in enumerate(rec.after):
        model.load_state_dict(weights)
        assert out["R"][i] == [round(accuracy(model, test), 4) for _, test in tasks]
    # each task is learned when it is trained (a driver that does not train stays near 0.5)
    assert all(out["R"][t][t] >= 0.75 for t in range(3)), out["R"]


def test_naive_fine_tuning_forgets_in_the_class_incremental_scenario():
    out = run_sequence(_learnable_cfg("naive", "class"), loaded=_tasks(n=96, m=64))
    R = out["R"]
    assert R[0][0] >= 0.9 and R[2][0] <= 0.1, R          # the classic: only the newest classes are predicted
    assert R[0][1] == 0.0                                # task 1's classes are not candidates before task 1
    assert out["bwt"] < -0.5


def test_the_registry_is_built_from_the_declarations_and_checks_the_config():
    assert set(METHODS) == {"naive", "ewc", "online_ewc", "replay", "lwf", "adapters"}
    assert all(cls.name == name for name, cls in METHODS.items())
    with pytest.raises(ConfigError, match=r"continual.method: 'ewk' .*Did you mean 'ewc'"):
        load_tasks(config_from_dict({"continual": {"method": "ewk"}}))      # before any data is read


def test_task_mask_limits_logits_to_the_task():
    enc = nn.Linear(4, 5)
    enc.feature_dim = 5
    m = ContinualModel(enc, 4, [[0, 1], [2, 3]])
    m.class_incremental = False
    out = m({"inputs": torch.randn(2, 4), "task": torch.tensor([0, 1])})
    assert out[0, 2] < -1e8 and out[1, 0] < -1e8 and out[0, 0] > -1e8
