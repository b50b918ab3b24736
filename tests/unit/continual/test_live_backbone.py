"""Continual learning on a pretrained backbone trained live (live_encoder.py): a text encoder with LoRA
(tiny-bert) and EfficientNet-Lite0, whose BatchNorm layers must not drift while they are frozen."""
import pytest
import torch
from torch import nn

from tunewright.config.load import config_from_dict
from tunewright.continual.core import per_example_grads
from tunewright.continual.driver import load_tasks, run_sequence
from tunewright.continual.methods import METHODS
from tunewright.data.examples import Examples
from tunewright.errors import ModelLoadError
from tunewright.models import load_model
from tunewright.models.frozen_text import tokenized
from tunewright.training.fit_examples import cross_entropy

WORDS = ["good", "bad", "fine", "awful", "great", "poor", "nice", "grim"]


def _text_cfg(method, scenario="task"):
    return config_from_dict({"model": {"name": "tiny-bert"}, "method": "lora", "data": {"max_length": 8},
                             "train": {"epochs": 2, "batch_size": 4, "lr": 2e-2, "log_every_steps": 1000},
                             "continual": {"benchmark": "text", "cache_features": False, "method": method,
                                           "scenario": scenario, "fisher_batches": 2, "buffer_size": 6,
                                           "replay_batch": 2, "adapter_dim": 4}})


def _text_tasks(cfg):
    """Two tasks of two classes (0, 1) and (2, 3): the label is which half of WORDS a text's first word is from."""
    tok = load_model(cfg, 2)[1]
    tasks = []
    for t in range(2):
        texts = [f"{WORDS[(i * 3 + t) % 8]} {WORDS[(i + t) % 8]} and more" for i in range(12)]
        y = torch.tensor([int((i * 3 + t) % 8 >= 4) + 2 * t for i in range(12)])
        ex = Examples(**tokenized(tok, texts, 8), labels=y, task=torch.full((12,), t))
        tasks.append((ex, ex))
    return tasks, [[0, 1], [2, 3]], 4


def test_live_text_backbone_runs_every_method_and_adapters_keep_earlier_tasks_exactly():
    for method in METHODS:
        cfg = _text_cfg(method, "class")
        out = run_sequence(cfg, loaded=_text_tasks(cfg))
        R = out["R"]
        assert len(R) == 2 and len(R[0]) == 2, (method, R)
        if method == "adapters":
            assert R[1][0] == R[0][0], R


def test_live_text_backbone_trains_only_lora_and_the_head():
    # naive: LoRA and the head on every task. adapters: LoRA, task 0's adapters and the head on task 0 (never
    # the pretrained weights under LoRA), then only task t's adapters and the head.
    from tunewright.continual.methods import TaskAdapters
    seen = {}

    class Spy:
        name, needs_task_id, adapter_dim = "spy", False, None

        def on_task_start(self, model, t):
            seen["naive", t] = {n for n, p in model.named_parameters() if p.requires_grad}

    class AdapterSpy(TaskAdapters):
        def on_task_start(self, model, t):
            super().on_task_start(model, t)
            seen["adapters", t] = {n for n, p in model.named_parameters() if p.requires_grad}

    cfg = _text_cfg("naive")
    run_sequence(cfg, Spy(), loaded=_text_tasks(cfg))
    run_sequence(cfg, AdapterSpy(4), loaded=_text_tasks(cfg))
    for t in (0, 1):
        names = seen["naive", t]
        assert all("lora_" in n or n.startswith("head.") for n in names), names
        assert any(n.startswith("head.") for n in names) and any("lora_" in n for n in names)
    first, second = seen["adapters", 0], seen["adapters", 1]
    assert all("lora_" in n or ".adapter.task0." in n or n.startswith("head.") for n in first), first
    assert any("lora_" in n for n in first) and any(".adapter.task0." in n for n in first)
    assert second and all(".adapter.task1." in n or n.startswith("head.") for n in second), second


def test_per_example_gradients_without_vmap_match_vmap():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))

    class Wrap(nn.Module):
        def __init__(self, vmap_safe):
            super().__init__()
            self.net, self.vmap_safe = model, vmap_safe

        def forward(self, batch):
            return self.net(batch["inputs"])

    batch = {"inputs": torch.randn(6, 5), "labels": torch.tensor([0, 1, 2, 0, 1, 2])}
    a = per_example_grads(Wrap(True), batch, cross_entropy)
    b = per_example_grads(Wrap(False), batch, cross_entropy)
    assert set(a) == set(b) and a["net.0.weight"].shape == (6, 4, 5)
    for n in a:
        torch.testing.assert_close(a[n], b[n])
    assert not torch.allclose(a["net.0.weight"][0], a["net.0.weight"][1])   # per example, not the mean


def _image_cfg(method, **extra):
    return config_from_dict({"model": {"name": "efficientnet-lite0"}, "data": {"image_size": 32},
                             "train": {"epochs": 1, "batch_size": 8, "lr": 1e-2, "log_every_steps": 1000},
                             **extra,
                             "continual": {"method": method, "fisher_batches": 1, "adapter_dim": 8,
                                           "buffer_size": 4, "replay_batch": 2}})


def _image_tasks():
    g = torch.Generator().manual_seed(0)
    tasks = []
    for t in range(2):
        x = torch.rand(16, 1, 28, 28, generator=g)
        y = (x.mean((1, 2, 3)) > 0.5).long() + 2 * t
        ex = Examples(inputs=x, labels=y, task=torch.full((16,), t))
        tasks.append((ex, ex))
    return tasks, [[0, 1], [2, 3]], 4


def test_efficientnet_adapters_leave_the_backbone_and_its_batchnorm_statistics_bit_identical():
    # Full fine-tuning of a BatchNorm network (bn_stats=auto: recalibration). After task 0 the frozen
    # backbone's BatchNorm layers must run on their stored statistics: in train mode they would update
    # their running means during task 1 and change task 0's outputs.
    from tunewright.continual.methods import TaskAdapters

    class Snapshots(TaskAdapters):
        def __init__(self):
            super().__init__(8)
            self.at = {}

        def on_task_start(self, model, t):
            super().on_task_start(model, t)
            self.at["start", t] = {k: v.clone() for k, v in model.state_dict().items()}

        def on_task_end(self, model, train, t):
            self.at["end", t] = {k: v.clone() for k, v in model.state_dict().items()}

    spy = Snapshots()
    out = run_sequence(_image_cfg("adapters"), spy, loaded=_image_tasks())
    before, after = spy.at["start", 1], spy.at["end", 1]
    kept = [k for k in before if ".adapter.task1." not in k and not k.startswith("head.")]
    assert any("running_mean" in k for k in kept)
    changed = [k for k in kept if not torch.equal(before[k], after[k])]
    assert not changed, changed[:5]
    assert torch.equal(before["head.weight"][:2], after["head.weight"][:2])   # task 0's head rows
    assert any(not torch.equal(before[k], after[k]) for k in before if ".adapter.task1." in k)   # task 1 learned
    assert out["R"][1][0] == out["R"][0][0]


def test_efficientnet_ewc_takes_per_example_fisher_through_vmap_and_replay_runs():
    for method in ("ewc", "replay", "lwf"):
        out = run_sequence(_image_cfg(method, strategy_options={"bn_stats": "frozen"}), loaded=_image_tasks())
        assert len(out["R"]) == 2, method


def test_image_benchmark_refuses_a_text_model_by_name():
    cfg = config_from_dict({"model": {"name": "tiny-bert"}, "continual": {"train_per_task": 4, "test_per_task": 4}})
    with pytest.raises(ModelLoadError, match="tiny-bert"):
        run_sequence(cfg, loaded=load_tasks(cfg))
