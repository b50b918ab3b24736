import torch
from torch import nn

from tunewright.config.load import config_from_dict
from tunewright.continual.driver import ContinualModel, run_sequence
from tunewright.data.examples import Examples


def _tasks():
    g = torch.Generator().manual_seed(0)
    tasks = []
    for t in range(3):
        x = torch.randn(48, 6, generator=g)
        y = (x[:, t] > 0).long() + 2 * t
        tasks.append((Examples(inputs=x[:32], labels=y[:32], task=torch.full((32,), t)),
                      Examples(inputs=x[32:], labels=y[32:], task=torch.full((16,), t))))
    return tasks, [[0, 1], [2, 3], [4, 5]], 6


def _cfg(method):
    return config_from_dict({"model": {"name": "tunewright.zoo:mlp_trunk", "factory_kwargs": {"in_features": 6,
                                                                                              "hidden": 8}},
                             "train": {"epochs": 1, "batch_size": 16, "lr": 1e-2},
                             "continual": {"method": method, "buffer_size": 8, "replay_batch": 4,
                                           "fisher_batches": 2}})


def test_every_method_runs_and_adapters_cannot_forget():
    for method in ("naive", "ewc", "online_ewc", "replay", "lwf", "adapters"):
        out = run_sequence(_cfg(method), loaded=_tasks())
        R = out["R"]
        assert len(R) == 3 and len(R[0]) == 3
        if method == "adapters":      # earlier tasks' accuracies never change
            for j in range(3):
                assert all(R[i][j] == R[j][j] for i in range(j, 3)), R


def test_task_mask_limits_logits_to_the_task():
    enc = nn.Linear(4, 5)
    enc.feature_dim = 5
    m = ContinualModel(enc, 4, [[0, 1], [2, 3]])
    m.class_incremental = False
    out = m({"inputs": torch.randn(2, 4), "task": torch.tensor([0, 1])})
    assert out[0, 2] < -1e8 and out[1, 0] < -1e8 and out[0, 0] > -1e8
