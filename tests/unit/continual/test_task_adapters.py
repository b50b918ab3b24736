"""Per-task adapters inside the backbone (peft/task_adapters.py) and the continual guarantee built
on them: training task B cannot change the shared backbone or task A's adapter."""
import torch

from tunewright.config.load import config_from_dict
from tunewright.continual.driver import ContinualModel, freeze_for_task
from tunewright.peft.layers import AdapterLayer
from tunewright.peft.task_adapters import is_task_adapter_param, set_task, train_only_task
from tunewright.data.examples import Examples
from tunewright.training.fit_examples import fit_examples
from tunewright.zoo import small_cnn


def _cnn_model(adapter_dim=4):
    torch.manual_seed(0)
    enc = small_cnn(width=4, image_size=8, feature_dim=8)   # conv(1->4), conv(4->8), linear(32->8)
    return ContinualModel(enc, 4, [[0, 1], [2, 3]], adapter_dim=adapter_dim)


def _task(t, n=32):
    g = torch.Generator().manual_seed(t)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0.5).long() + 2 * t
    return Examples(inputs=x, labels=y, task=torch.full((n,), t))


CFG = config_from_dict({"train": {"epochs": 2, "batch_size": 8, "lr": 5e-2, "log_every_steps": 100}})


def test_one_adapter_per_task_sits_after_every_backbone_layer_and_starts_as_the_identity():
    model = _cnn_model()
    layers = {n: m for n, m in model.backbone.named_modules() if isinstance(m, AdapterLayer)}
    assert sorted(layers) == ["0", "3", "7"]                       # both convs and the linear layer
    assert all(m.adapter_names() == ["task0", "task1"] for m in layers.values())
    assert layers["0"].adapter["task0"].channel_dim == 1           # conv: on the channel axis
    x = torch.rand(5, 1, 8, 8)
    set_task(model.backbone, None)
    plain = model.backbone(x)
    for t in (0, 1):
        set_task(model.backbone, t)
        assert all(m.active == f"task{t}" for m in layers.values())
        assert torch.equal(model.backbone(x), plain)               # up-projection zero at init
    # a mixed batch is routed example by example to its task's adapters
    with torch.no_grad():
        for m in layers.values():
            m.adapter["task1"].up.bias.fill_(0.5)
    batch = {"inputs": x, "task": torch.tensor([0, 1, 0, 1, 1])}
    feats = model.features(batch)
    for t in (0, 1):
        set_task(model.backbone, t)
        sel = batch["task"] == t
        assert torch.allclose(feats[sel], model.backbone(x[sel]))
    assert not torch.allclose(feats[1], plain[1])


def _protected(model, old_task: int, old_classes: list[int]) -> dict:
    """What training a later task must leave bit-identical: the shared backbone, task `old_task`'s
    adapters and the head rows of its classes."""
    keep = {n: p.detach().clone() for n, p in model.named_parameters()
            if (n.startswith("backbone.") and not is_task_adapter_param(n)) or is_task_adapter_param(n, old_task)}
    keep["head.weight[old]"] = model.head.weight[old_classes].detach().clone()
    keep["head.bias[old]"] = model.head.bias[old_classes].detach().clone()
    return keep


def _changed(model, before: dict, old_classes: list[int]) -> list[str]:
    params = dict(model.named_parameters())
    now = {**{n: params[n] for n in before if n in params},
           "head.weight[old]": model.head.weight[old_classes], "head.bias[old]": model.head.bias[old_classes]}
    return [n for n, v in before.items() if not torch.equal(v, now[n].detach())]


def _train_a_then_b(freeze_b):
    model = _cnn_model()
    freeze_for_task(model, 0)
    fit_examples(model, _task(0), CFG, seed=0)
    before = _protected(model, 0, [0, 1])
    adapter_b = {n: p.detach().clone() for n, p in model.named_parameters() if is_task_adapter_param(n, 1)}
    freeze_b(model)
    model.seen = 2
    fit_examples(model, _task(1), CFG, seed=1)
    moved_b = [n for n, p in model.named_parameters() if n in adapter_b and not torch.equal(p, adapter_b[n])]
    return _changed(model, before, [0, 1]), moved_b


def test_training_task_b_leaves_task_a_adapter_and_the_backbone_bit_identical():
    changed, moved_b = _train_a_then_b(lambda m: freeze_for_task(m, 1))
    assert changed == []                                           # cannot forget, by construction
    assert moved_b                                                 # while task B did train its own adapter


def test_the_guarantee_check_fails_when_task_b_may_touch_shared_weights():
    # The same check on a run that breaks the construction (everything trains on task B) must see it.
    changed, _ = _train_a_then_b(lambda m: train_only_task(m, 1, also=lambda n: True))
    assert any(n.startswith("backbone.") and ".adapter." not in n for n in changed), changed


def test_freeze_for_task_trains_the_backbone_on_the_first_task_only():
    model = _cnn_model()
    first = freeze_for_task(model, 0)
    later = freeze_for_task(model, 1)
    assert any(n == "backbone.7.base_layer.weight" for n in first)
    assert all(is_task_adapter_param(n, 1) or n.startswith("head.") for n in later)
    assert not any(is_task_adapter_param(n, 0) for n in later)
