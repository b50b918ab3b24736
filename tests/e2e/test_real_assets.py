"""Smoke runs on the real packaged assets: a handful of steps each, checking the whole path works."""
import json

import pytest

pytestmark = pytest.mark.assets


def _need(*names):
    from tunewright.assets import get_dataset, get_model_asset
    for n in names:
        asset = get_model_asset(n) if n in ("minilm", "smollm2-135m", "efficientnet-lite0") else get_dataset(n)
        if not asset.is_installed():
            pytest.skip(f"{n} not installed: {asset.install}")


def _train(tmp_path, **kw):
    from tunewright import train
    return train(kw.pop("config", {}), output_dir=str(tmp_path), **kw)


def test_minilm_on_reuters_r8_few_steps(tmp_path):
    _need("minilm", "reuters-r8")
    res = _train(tmp_path, run_name="r8", model={"name": "minilm"},
                 data={"train": "reuters-r8", "train_subset": 200, "test_subset": 64, "max_length": 64},
                 train={"max_steps": 3, "batch_size": 16, "lr": 1e-4, "progress": "none"})
    s = res.summary
    assert s["steps"] == 3 and s["sizes"]["test"] == 64 and len(s["label_names"]) == 8
    assert 0.0 <= s["test"]["accuracy"] <= 1.0 and s["total_params"] > 22_000_000
    meta = json.loads((res.run_dir / "model" / "tunewright_model.json").read_text())
    assert meta["pooling"] == "mean"  # read from the sentence-transformers config


def test_smollm2_causal_lm_on_friends_few_steps(tmp_path):
    _need("smollm2-135m", "friends")
    res = _train(tmp_path, run_name="lm", task="causal_lm", model={"name": "smollm2-135m"},
                 data={"train": "friends", "train_subset": 64, "test_subset": 16, "val_fraction": 0.25,
                       "max_length": 48},
                 train={"max_steps": 2, "batch_size": 8, "lr": 1e-5, "progress": "none"})
    s = res.summary
    assert {"loss", "perplexity"} <= set(s["test"]) and 1 < s["test"]["perplexity"] < 10_000


def test_efficientnet_on_digits_few_steps(tmp_path):
    _need("efficientnet-lite0", "digits")
    res = _train(tmp_path, run_name="img", task="image_classification", model={"name": "efficientnet-lite0"},
                 data={"train": "digits", "train_subset": 64, "test_subset": 32, "image_size": 64},
                 train={"max_steps": 2, "batch_size": 16, "lr": 1e-3, "progress": "none"})
    s = res.summary
    assert s["steps"] == 2 and len(s["label_names"]) == 10 and s["total_params"] > 3_000_000
