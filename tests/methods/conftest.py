"""Tiny models and data for the method contract matrix: a BERT-like and a Llama-like transformer built
from configs (`tiny-bert`, `tiny-llama`), and a small CNN and an MLP from a factory module, on tiny
text, instruction and image data. Everything is built here; nothing is downloaded."""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"

FACTORIES = textwrap.dedent('''
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        """(B, 3, 8, 8) -> (B, 8): two convolutions (one depthwise), batch norm, global pooling."""
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.feature_dim = 8

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            return self.pool(torch.relu(self.conv2(x))).flatten(1)

    def cnn():
        torch.manual_seed(0)            # a fixed "pretrained" base: the same weights on every build
        return SmallCNN()

    def mlp():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 16))
        net.feature_dim = 16
        return net
''')


@pytest.fixture(scope="session")
def factory_module(tmp_path_factory):
    d = tmp_path_factory.mktemp("contract_factories")
    (d / "tw_contract_models.py").write_text(FACTORIES)
    sys.path.insert(0, str(d))
    yield "tw_contract_models"
    sys.path.remove(str(d))
    sys.modules.pop("tw_contract_models", None)


@pytest.fixture(scope="session")
def image_folders(tmp_path_factory):
    """train/val/test image folders, 2 classes told apart by colour, 8x8 PNGs."""
    from PIL import Image
    root = tmp_path_factory.mktemp("contract_images")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        for label, channel in (("red", 0), ("blue", 2)):
            d = root / split / label
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 90, (8, 8, 3), dtype=np.uint8)
                img[..., channel] = rng.integers(150, 255, (8, 8), dtype=np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    return root


def model_config(kind: str, factory_module: str, images: Path) -> dict:
    """A run config (dict) for one of the four tiny models."""
    common = {"train": {"batch_size": 4, "max_steps": 4, "num_threads": 1, "progress": "none", "lr": 1e-3,
                        "log_every_steps": 1},
              "checkpoint": {"every_steps": 2, "keep_last": 3}}
    if kind == "bert":
        return {**common, "task": "classification", "model": {"name": "tiny-bert"},
                "data": {"train": str(DATA / "tiny_train.csv"), "val": str(DATA / "tiny_val.csv"),
                         "test": str(DATA / "tiny_test.csv"), "max_length": 16}}
    if kind == "llama":
        return {**common, "task": "causal_lm", "model": {"name": "tiny-llama"},
                "data": {"train": str(DATA / "tiny_instruct.jsonl"), "max_length": 48}}
    return {**common, "task": "image_classification",
            "model": {"name": f"{factory_module}:{kind}", "head_dropout": 0.0},
            "data": {"train": str(images / "train"), "val": str(images / "val"), "test": str(images / "test"),
                     "image_size": 8}}


# Options that make a 4-step run exercise each method: AdaLoRA prunes (budget phase, then final ranks).
OPTIONS = {"adalora": {"adalora": {"delta_t": 1, "tinit": 0.25, "tfinal": 0.25, "init_r": 4, "target_r": 2}},
           "prompt_tuning": {"prompt_tuning": {"num_virtual_tokens": 4}},
           "prefix_tuning": {"prefix_tuning": {"num_virtual_tokens": 4}},
           "lora": {"lora": {"r": 4}}}


@pytest.fixture(scope="session")
def contract_config(factory_module, image_folders):
    """contract_config(kind, method=..., **top_level) -> a run config dict for one of the four tiny models,
    with the method's test options (OPTIONS)."""
    def make(kind: str, **extra) -> dict:
        return {**model_config(kind, factory_module, image_folders), **OPTIONS.get(extra.get("method"), {}), **extra}
    return make


class Snapshot:
    """Copies the model's parameters when fit() starts: after the method is applied and the head warm-started,
    before the first step."""

    def on_fit_start(self, ctx) -> None:
        self.params = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}


@pytest.fixture(scope="session")
def trained(tmp_path_factory, contract_config):
    """trained(method, kind) -> (cfg, base model, RunResult, batch): one uninterrupted 4-step run per pair,
    shared by every test that needs one. `RunResult.start` holds the parameters as training started."""
    import torch  # noqa: F401
    from tunewright.config.load import config_from_dict
    from tunewright.run import prepare, train
    cache = {}

    def get(method, kind, **extra):
        key = (method, kind, json.dumps(extra, sort_keys=True))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{method}-{kind}")
            cfg = config_from_dict(contract_config(kind, method=method, output_dir=str(out), run_name="run", **extra))
            _, base, _, bundle = prepare(cfg)                       # the same seeded base the run starts from
            snapshot = Snapshot()
            result = train(cfg, keep_model=True, callbacks=[snapshot])
            result.start = snapshot.params
            batch = bundle.collate([bundle.val[i] for i in range(min(4, len(bundle.val)))])
            cache[key] = (cfg, base, result, batch)
        return cache[key]
    return get
