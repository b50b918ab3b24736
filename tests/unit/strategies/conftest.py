"""Tiny models and a harness that assembles a run exactly as `train` does, then fits it.

Models: `tiny-bert` (an HF encoder), `tiny-llama` (a causal LM with tied embeddings), a small CNN
from a `package.module:function` factory (a plain nn.Module) and, where it is installed,
EfficientNet-Lite0 at 32 px. Data: the tiny CSV/JSONL files in tests/data and 96 sklearn digits.
"""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data"

CNN = textwrap.dedent('''
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self, channels=4):
            super().__init__()
            self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.feature_dim = channels

        def forward(self, x):               # (B, 3, S, S) -> (B, channels)
            x = torch.relu(self.bn1(self.conv1(x)))
            return self.pool(torch.relu(self.conv2(x))).flatten(1)

    def cnn(channels=4):
        return SmallCNN(channels)
''')


@pytest.fixture(scope="session")
def cnn_factory(tmp_path_factory):
    d = tmp_path_factory.mktemp("strategy_factories")
    (d / "tw_strategy_factories.py").write_text(CNN)
    sys.path.insert(0, str(d))
    yield "tw_strategy_factories:cnn"
    sys.path.remove(str(d))


def model_config(kind: str, tmp_path: Path, cnn_target: str | None = None) -> dict:
    common = {"output_dir": str(tmp_path / "runs"), "run_name": kind,
              "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "progress": "none", "log_every_steps": 100},
              "checkpoint": {"keep_last": 1}}
    if kind == "bert":
        return {**common, "task": "classification", "model": {"name": "tiny-bert"},
                "data": {"train": str(DATA / "tiny_train.csv"), "val": str(DATA / "tiny_val.csv"),
                         "test": str(DATA / "tiny_test.csv"), "max_length": 32}}
    if kind == "llama":
        return {**common, "task": "causal_lm", "model": {"name": "tiny-llama"},
                "data": {"train": str(DATA / "tiny_lm.jsonl"), "max_length": 32}}
    if kind in ("cnn", "effnet"):
        name = cnn_target if kind == "cnn" else "efficientnet-lite0"
        return {**common, "task": "image_classification", "model": {"name": name},
                "data": {"train": "digits", "train_subset": 96, "test_subset": 32,
                         "image_size": 8 if kind == "cnn" else 32}}
    raise ValueError(kind)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in list(model.named_parameters()) + list(model.named_buffers())}


def changed(before: dict, model: torch.nn.Module, buffers: bool = False) -> set[str]:
    items = list(model.named_parameters()) + (list(model.named_buffers()) if buffers else [])
    return {n for n, t in items if n in before and not torch.equal(before[n], t.detach())}


def fit_run(cfg, callbacks=()):
    """Assemble as `train` does (run.assemble), run the plans' prepare steps, fit; no run folder.

    Returns (model, weights before fit, FitData, TrainState, plans).
    """
    from tunewright.config.load import config_from_dict
    from tunewright.run import assemble
    from tunewright.training.plan import FitData
    from tunewright.training.callbacks import CallbackList
    from tunewright.training.loop import fit
    from tunewright.training.losses import loss_for
    from tunewright.training.precision import resolve_precision

    cfg = cfg if not isinstance(cfg, dict) else config_from_dict(cfg)
    asm = assemble(cfg)
    before = snapshot(asm.model)
    data = FitData.of(asm.model, asm.bundle)
    for p in asm.plans:
        if p.prepare is not None:
            data = p.prepare(data, cfg, asm.device)
    cbs = CallbackList([c for p in asm.plans for c in p.callbacks] + list(callbacks))
    state = fit(data.model, data.train, data.collate, asm.optimizer, asm.scheduler, cfg,
                loss_fn=loss_for(cfg.task, cfg.train.label_smoothing), precision=resolve_precision("fp32", asm.device),
                callbacks=cbs, lengths=data.lengths)
    return asm.model, before, data, state, asm.plans


@pytest.fixture
def tw_models():
    from types import SimpleNamespace
    return SimpleNamespace(config=model_config, snapshot=snapshot, changed=changed, fit_run=fit_run)
