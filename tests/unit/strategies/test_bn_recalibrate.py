"""recalibrate_bn: BatchNorm running statistics become the exact mean/variance over the sampled training
batches at the current weights; everything else (modes, momenta, frozen BatchNorm, the global RNG) is
left as it was."""
import numpy as np
import torch
from torch import nn

from tunewright.strategies.frozen_mode import recalibrate_bn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4, momentum=0.01)         # TF-style momentum, as EfficientNet-Lite's
        self.drop = nn.Dropout(0.5)
        self.frozen_bn = nn.BatchNorm1d(4).requires_grad_(False)

    def forward(self, batch):
        return self.frozen_bn(self.drop(self.bn(self.lin(batch["x"]))))


def collate(items):
    return {"x": torch.stack([it["x"] for it in items])}


def test_statistics_are_the_exact_average_and_nothing_else_changes():
    torch.manual_seed(0)
    net = Net()
    data = [{"x": torch.randn(3) * 3 + 1} for _ in range(50)]
    frozen_before = (net.frozen_bn.running_mean.clone(), net.frozen_bn.running_var.clone())
    net.train()
    rng = torch.get_rng_state()
    used = recalibrate_bn(net, data, collate, "cpu", batch_size=8, max_batches=100)
    assert used == 48                      # 6 full batches; a 7th of 2 would weigh as much as one of 8
    # momentum=None: the running statistics are the plain average of the per-batch statistics over the
    # sampled batches (recalibrate_bn's own seeded order, full batches of 8 only)
    idx = np.random.default_rng(0).permutation(50).tolist()
    with torch.no_grad():
        hs = [net.lin(torch.stack([data[j]["x"] for j in idx[s:s + 8]])) for s in range(0, 48, 8)]
    assert torch.allclose(net.bn.running_mean, torch.stack([h.mean(0) for h in hs]).mean(0), atol=1e-5)
    assert torch.allclose(net.bn.running_var, torch.stack([h.var(0) for h in hs]).mean(0), atol=1e-4)
    assert net.bn.momentum == 0.01 and net.training and net.drop.training and net.bn.training
    assert torch.equal(net.frozen_bn.running_mean, frozen_before[0])
    assert torch.equal(net.frozen_bn.running_var, frozen_before[1])
    assert torch.equal(torch.get_rng_state(), rng)                          # dropout was off: no draws


def test_one_batch_gives_that_batchs_exact_statistics():
    torch.manual_seed(1)
    net = Net()
    data = [{"x": torch.randn(3)} for _ in range(8)]
    recalibrate_bn(net, data, collate, "cpu", batch_size=8, max_batches=1)
    with torch.no_grad():
        h = net.lin(torch.stack([d["x"] for d in data]))
    assert torch.allclose(net.bn.running_mean, h.mean(0), atol=1e-6)
    assert torch.allclose(net.bn.running_var, h.var(0, unbiased=True), atol=1e-5)


def test_nothing_to_do_without_trainable_batchnorm():
    net = Net().requires_grad_(False)
    before = net.bn.running_mean.clone()
    assert recalibrate_bn(net, [{"x": torch.randn(3)}] * 4, collate, "cpu", 2, 2) == 0
    assert torch.equal(net.bn.running_mean, before)


def test_train_recalibrates_before_evaluation_so_the_saved_model_holds_recomputed_statistics(tmp_path, tw_models,
                                                                                             cnn_factory):
    """Through `tunewright.train`: with bn_stats auto (full fine-tuning -> recalibrate) the saved best model's
    BatchNorm statistics are the recalibrated ones at its weights; with bn_stats train they are not."""
    from tunewright.config.load import config_from_dict
    from tunewright.data import build_data, read_data
    from tunewright.run import load_run, train
    from tunewright.training.precision import resolve_precision

    stats = {}
    for mode in ("auto", "train"):
        cfg = tw_models.config("cnn", tmp_path / mode, cnn_factory)
        cfg.update(strategy="full", strategy_options={"bn_stats": mode, "bn_recalibrate_batches": 3})
        run = train(cfg)
        conf, model, pre, _ = load_run(run.run_dir)
        saved = model.backbone.bn1.running_mean.clone()
        bundle = build_data(read_data(config_from_dict(cfg)), pre, conf)
        model.requires_grad_(True)
        # under the run's own precision: `auto` is bf16 on a CPU with fast bf16 (AMX), fp32 elsewhere
        autocast = resolve_precision(conf.train.precision, torch.device("cpu")).autocast
        recalibrate_bn(model, bundle.train, bundle.collate, "cpu", conf.train.batch_size, 3, autocast)
        stats[mode] = (saved, model.backbone.bn1.running_mean)
    assert torch.allclose(*stats["auto"], atol=1e-5), stats["auto"]
    assert not torch.allclose(*stats["train"], atol=1e-3), stats["train"]
