"""save_run_model -> load_run_model gives identical logits, and bad folders fail clearly."""
import json

import pytest
import torch

from tunewright.errors import CheckpointError, ModelLoadError
from tunewright.models import ImageSpec, load_model, load_run_model, load_weights_into, save_run_model


def roundtrip(model, pre, tmp_path, batch):
    model.eval()
    with torch.no_grad():
        model.head.apply(lambda m: torch.nn.init.normal_(m.weight) if isinstance(m, torch.nn.Linear) else None)
        before = model(batch)
    out = save_run_model(model, tmp_path / "model", {"task": model.task}, ["a", "b", "c"], pre)
    again, pre2, meta = load_run_model(out)
    with torch.no_grad():
        after = again(batch)
    assert torch.equal(before, after)
    assert meta["label_names"] == ["a", "b", "c"] and meta["task"] == model.task
    assert [n for n, _ in again.named_parameters()] == [n for n, _ in model.named_parameters()]
    return again, pre2, meta


def test_bert_roundtrip_without_original_weights(tiny_bert_dir, tw, tmp_path):
    model, tok = load_model(tw.cfg(tiny_bert_dir, pooling="mean", dropout=0.05), 3)
    batch = tw.batch(tok)
    again, tok2, meta = roundtrip(model, tok, tmp_path, batch)
    assert meta["source"]["config"]["hidden_size"] == 16 and meta["pooling"] == "mean"
    assert again.pooling == "mean" and again.backbone.config.hidden_dropout_prob == 0.05
    assert tok2(["the cat"])["input_ids"] == tok(["the cat"])["input_ids"]
    assert not (tmp_path / "model" / "pytorch_model.bin").exists()


def test_llama_causal_lm_tied_roundtrip(tiny_llama_dir, tw, tmp_path):
    model, tok = load_model(tw.cfg(tiny_llama_dir, task="causal_lm"), None)
    with torch.no_grad():
        model.backbone.model.embed_tokens.weight.add_(0.5)   # trained weights differ from the folder's
    again, tok2, _ = roundtrip(model, tok, tmp_path, tw.batch(tok))
    assert again.backbone.lm_head.weight is again.backbone.model.embed_tokens.weight   # tie restored
    assert tok2.pad_token == "</s>"


def test_factory_cnn_and_mlp_roundtrip(factory_module, tw, tmp_path):
    cnn, spec = load_model(tw.cfg(f"{factory_module}:cnn", task="image_classification"), 3)
    cnn.train()
    cnn({"pixel_values": torch.randn(4, 3, 8, 8)})                     # move BatchNorm running stats
    _, spec2, _ = roundtrip(cnn, spec, tmp_path / "cnn", {"pixel_values": torch.randn(2, 3, 8, 8)})
    assert spec2 == spec and isinstance(spec2, ImageSpec)
    mlp, pre = load_model(tw.cfg(f"{factory_module}:mlp", task="regression", factory_kwargs={"in_dim": 5}), None)
    _, pre2, meta = roundtrip(mlp, pre, tmp_path / "mlp", {"inputs": torch.randn(2, 5)})
    assert pre2 is None and meta["source"]["kwargs"] == {"in_dim": 5}


def test_missing_and_truncated(tiny_bert_dir, tw, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_run_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="tunewright_model.json is missing"):
        load_run_model(tmp_path / "empty")
    model, tok = load_model(tw.cfg(tiny_bert_dir), 2)
    out = save_run_model(model, tmp_path / "m", None, None, tok)
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_run_model(out)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_weights_into(model, weights)
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_run_model(out)


def test_meta_is_plain_json(tiny_bert_dir, tw, tmp_path):
    model, tok = load_model(tw.cfg(tiny_bert_dir), 2)
    out = save_run_model(model, tmp_path / "m", {"a": 1}, ["x", "y"], tok)
    meta = json.loads((out / "tunewright_model.json").read_text())
    assert meta["source"]["type"] == "hf" and meta["source"]["config"]["model_type"] == "bert"
    assert meta["modality"] == "text" and meta["config"] == {"a": 1} and meta["tokenizer"] is True
    assert (out / "tokenizer.json").is_file()


def test_mismatched_weights_name_the_problem(tiny_bert_dir, factory_module, tw, tmp_path):
    model, tok = load_model(tw.cfg(tiny_bert_dir), 2)
    out = save_run_model(model, tmp_path / "m", None, None, tok)
    other, _ = load_model(tw.cfg(f"{factory_module}:mlp"), 2)
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_weights_into(other, out / "model.safetensors")
