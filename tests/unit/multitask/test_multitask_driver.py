import torch

from tunewright.config.load import config_from_dict
from tunewright.multitask.driver import negative_transfer, train_multitask
from tunewright.data.examples import Examples


def _data():
    g = torch.Generator().manual_seed(0)
    out = []
    for t, k in enumerate((2, 3)):
        x = torch.randn(60, 8, generator=g)
        y = x[:, :k].argmax(1)
        out.append((f"task{t}", Examples(inputs=x[:40], labels=y[:40], task=torch.full((40,), t)),
                    Examples(inputs=x[40:], labels=y[40:], task=torch.full((20,), t)), k))
    return out


def test_multitask_runs_every_option_and_reports_transfer():
    cfg = config_from_dict({"train": {"epochs": 2, "batch_size": 8, "lr": 1e-2}})
    data = _data()
    for sampling, weighting in (("proportional", "fixed"), ("temperature", "uncertainty"), ("round_robin", "fixed")):
        out = train_multitask(cfg, data, sampling=sampling, weighting=weighting, task_adapters=True)
        assert set(out) >= {"task0", "task1"} and all(0 <= out[k] <= 1 for k in ("task0", "task1"))
        if weighting == "uncertainty":
            assert any(v != 0 for v in out["log_vars"])           # the s_i are learned
    rows = negative_transfer(cfg, data)
    assert [r["task"] for r in rows] == ["task0", "task1"]
    assert all(abs(r["delta"] - (r["multi"] - r["single"])) < 1e-12 for r in rows)


def test_live_backbone_with_a_peft_method_trains_only_its_parameters():
    from tunewright.live_encoder import live_encoder
    from tunewright.models.frozen_text import tokenized
    from tunewright.models import load_model
    cfg = config_from_dict({"model": {"name": "tiny-bert"}, "method": "lora", "data": {"max_length": 8},
                            "train": {"epochs": 1, "batch_size": 4, "lr": 1e-2}})
    _, tok = load_model(cfg, 2)
    words = ["good", "bad", "fine", "awful", "great", "poor", "nice", "grim"]
    data = []
    for t in range(2):
        cols = tokenized(tok, [f"{w} {words[(i + t) % 8]}" for i, w in enumerate(words)], 8)
        y = torch.tensor([i % 2 for i in range(8)])
        ex = Examples(**cols, labels=y, task=torch.full((8,), t))
        data.append((f"t{t}", ex, ex, 2))
    enc = live_encoder(cfg).encoder
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable), trainable
    out = train_multitask(cfg, data, sampling="round_robin")
    assert set(out) >= {"t0", "t1"}


def test_task_adapters_live_inside_the_backbone_and_only_the_batch_task_s_adapter_learns():
    from tunewright.multitask.driver import MultiTaskModel
    from tunewright.peft.layers import AdapterLayer
    from tunewright.zoo import mlp_trunk
    torch.manual_seed(0)
    model = MultiTaskModel(mlp_trunk(in_features=8, hidden=16), [2, 3], adapter_dim=4)
    layer = model.backbone[0]
    assert isinstance(layer, AdapterLayer) and layer.adapter_names() == ["task0", "task1"]
    assert layer.adapter["task0"].down.out_features == 4
    x = torch.randn(5, 8)
    for t, k in ((0, 2), (1, 3)):
        model.zero_grad(set_to_none=True)
        out = model({"inputs": x, "task": torch.full((5,), t)})
        assert out.shape == (5, k) and layer.active == f"task{t}"
        out.sum().backward()
        grads = {n: p.grad for n, p in model.named_parameters() if ".adapter." in n}
        assert all(g is not None for n, g in grads.items() if f".task{t}." in n)
        assert all(g is None for n, g in grads.items() if f".task{1 - t}." in n)   # the other task's: untouched


def test_live_backbone_gets_its_task_adapters_in_the_transformer_layers():
    from tunewright.live_encoder import live_encoder
    from tunewright.multitask.driver import MultiTaskModel
    from tunewright.peft.layers import AdapterLayer
    cfg = config_from_dict({"model": {"name": "tiny-bert"}, "method": "lora", "data": {"max_length": 8}})
    enc = live_encoder(cfg).encoder
    model = MultiTaskModel(enc, [2, 2], adapter_dim=4)
    paths = sorted(n for n, m in enc.model.backbone.named_modules() if isinstance(m, AdapterLayer))
    assert paths and all(p.endswith(("attention.output.dense", "output.dense")) for p in paths), paths
    assert len(paths) == 2 * enc.model.backbone.config.num_hidden_layers        # Houlsby: 2 per layer
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")]
    assert all("lora_" in n or ".adapter.task" in n for n in trainable), trainable
