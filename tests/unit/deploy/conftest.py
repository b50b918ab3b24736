"""Tiny runs shared by the deploy tests: two LoRA runs on the same tiny BERT (different seeds and learning
rates, so their adapters and heads differ), a full fine-tune, a small CNN on digits, and a tiny Llama LoRA."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TINY = {"task": "classification", "model": {"name": "tiny-bert"},
        "data": {"train": str(REPO / "tests/data/tiny_train.csv"), "val": str(REPO / "tests/data/tiny_val.csv"),
                 "test": str(REPO / "tests/data/tiny_test.csv"), "max_length": 32},
        "train": {"epochs": 4, "batch_size": 8, "lr": 0.003, "progress": "none"}}


def _train(out: Path, name: str, **kw):
    from tunewright import train
    cfg = {**TINY, "run_name": name, "output_dir": str(out), **kw}
    return train(cfg).run_dir


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("deploy_runs")


@pytest.fixture(scope="session")
def lora_runs(runs_dir):
    a = _train(runs_dir, "lora_a", method="lora", lora={"r": 4, "lr": 0.01})
    b = _train(runs_dir, "lora_b", method="lora", lora={"r": 4, "lr": 0.03},
               train={**TINY["train"], "seed": 7})
    return a, b


@pytest.fixture(scope="session")
def image_run(runs_dir):
    return _train(runs_dir, "cnn", task="image_classification",
                  model={"name": "tunewright.zoo:small_cnn",
                         "factory_kwargs": {"in_channels": 3, "width": 4, "image_size": 16, "feature_dim": 16}},
                  data={"train": "digits", "image_size": 16, "train_subset": 200, "test_subset": 60},
                  train={"epochs": 1, "batch_size": 16, "lr": 0.01, "progress": "none"})


@pytest.fixture(scope="session")
def llama_run(runs_dir):
    return _train(runs_dir, "llama_lora", task="causal_lm", model={"name": "tiny-llama"}, method="lora",
                  data={"train": str(REPO / "tests/data/tiny_lm.jsonl"), "max_length": 32},
                  train={"max_steps": 3, "batch_size": 8, "lr": 0.01, "progress": "none"})
