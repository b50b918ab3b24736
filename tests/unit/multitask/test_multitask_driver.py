import torch

from tunewright.config.load import config_from_dict
from tunewright.multitask.driver import negative_transfer, train_multitask
from tunewright.training.drive import Examples


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
        if True:
            assert set(out) >= {"task0", "task1"}
            if weighting == "uncertainty":
                assert any(v != 0 for v in out["log_vars"])       # the s_i are learned
    rows = negative_transfer(cfg, data)
    assert [r["task"] for r in rows] == ["task0", "task1"]
    assert all(abs(r["delta"] - (r["multi"] - r["single"])) < 1e-12 for r in rows)


def test_live_backbone_with_a_peft_method_trains_only_its_parameters():
    from tunewright.multitask.driver import live_encoder, tokenized
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
    enc, _ = live_encoder(cfg)
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable), trainable
    out = train_multitask(cfg, data, sampling="round_robin")
    assert set(out) >= {"t0", "t1"}
