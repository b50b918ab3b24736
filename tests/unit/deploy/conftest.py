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
    # another seed (LoRA and head init, data order): a different adapter. Not a higher LR: lr 0.03 collapsed to
    # one class at probability 1.0, and a saturated adapter hides a head mix-up in the mixed-batch test.
    b = _train(runs_dir, "lora_b", method="lora", lora={"r": 4, "lr": 0.01},
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


@pytest.fixture(scope="session")
def smol_tiny_llama(runs_dir):
    """tiny-llama's shape (2 layers, hidden 32, 2 heads / 1 kv head) with SmolLM2's BPE tokenizer and vocabulary
    (49152), random weights: a Llama whose tokenizer GGUF can hold (tiny-llama borrows MiniLM's WordPiece)."""
    pytest.importorskip("gguf")
    from tunewright.assets.models import MODELS
    from tunewright.errors import ModelLoadError
    try:
        smol = MODELS["smollm2-135m"].prepare()
    except ModelLoadError as err:
        pytest.skip(str(err))
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    out = runs_dir / "smol-tiny-llama"
    config = AutoConfig.for_model("llama", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  num_key_value_heads=1, intermediate_size=64, max_position_embeddings=512,
                                  vocab_size=49152, tie_word_embeddings=True, pad_token_id=2, bos_token_id=1,
                                  eos_token_id=2, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (Path(smol) / f).is_file():
            shutil.copy(Path(smol) / f, out / f)
    return out


@pytest.fixture(scope="session")
def smol_llama_run(runs_dir, smol_tiny_llama):
    return _train(runs_dir, "smol_llama_lora", task="causal_lm", model={"name": str(smol_tiny_llama)}, method="lora",
                  data={"train": str(REPO / "tests/data/tiny_lm.jsonl"), "max_length": 32},
                  train={"max_steps": 3, "batch_size": 8, "lr": 0.01, "progress": "none"})


@pytest.fixture(scope="session")
def text_export(lora_runs, tmp_path_factory):
    """lora_runs[0] exported with int8 (the default exporter): (report, folder)."""
    pytest.importorskip("onnxruntime")
    from tunewright.deploy.onnx_export import export_onnx
    out = tmp_path_factory.mktemp("onnx_text")
    return export_onnx(lora_runs[0], out, quantize="int8"), out
