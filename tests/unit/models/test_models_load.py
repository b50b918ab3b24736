"""load_model: name resolution, clear errors, heads per task, factories, dropout override."""
import pytest
import torch
from torch import nn

from tunewright.config.load import validate
from tunewright.errors import ConfigError, ModelLoadError
from tunewright.models import ImageSpec, TaskModel, load_model
from tunewright.models.load import looks_like_path


def test_unknown_hub_name_gives_one_clear_error(tw, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_model(tw.cfg("no-such-org/no-such-model-xyz"), num_labels=2)
    msg = str(info.value)
    assert "'no-such-org/no-such-model-xyz'" in msg
    assert "not reachable" in msg and "nothing cached" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__   # no HF error stack


def test_missing_local_path_is_named(tw, tmp_path):
    missing = tmp_path / "models" / "mine"
    for name in (str(missing), "./no/such/model", "~/nowhere-model-xyz"):
        with pytest.raises(ModelLoadError, match="does not exist") as info:
            load_model(tw.cfg(name), num_labels=2)
        assert name in str(info.value)


def test_path_heuristics():
    assert looks_like_path("./m") and looks_like_path("/abs/m") and looks_like_path("~/m")
    assert looks_like_path("a/b/c")                                   # hub ids have at most one /
    assert not looks_like_path("bert-base-uncased") and not looks_like_path("org/name")


def test_folder_without_config_and_file_paths(tw, tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tw.cfg(tmp_path), num_labels=2)
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_model(tw.cfg(f), num_labels=2)


@pytest.mark.parametrize("task,num_labels,shape", [
    ("classification", 4, (2, 4)), ("multilabel", 5, (2, 5)), ("regression", None, (2,))])
def test_text_heads(task, num_labels, shape, tiny_bert_dir, tw):
    model, tok = load_model(tw.cfg(tiny_bert_dir, task=task, head_dropout=0.2), num_labels)
    assert isinstance(model, TaskModel) and model.modality == "text"
    batch = {**tw.batch(tok), "labels": torch.zeros(2)}                # labels are ignored
    assert model(batch).shape == shape
    assert model.features(batch).shape == (2, 16)
    names = [n for n, _ in model.named_parameters()]
    assert all(n.startswith(("backbone.", "head.")) for n in names)
    assert not any("pooler" in n for n in names)                      # our pooling replaces it
    assert model.head[0].p == 0.2
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_causal_lm(tiny_llama_dir, tw):
    model, tok = load_model(tw.cfg(tiny_llama_dir, task="causal_lm"), None)
    batch = tw.batch(tok)
    T = batch["input_ids"].shape[1]
    assert model(batch).shape == (2, T, len(tw.words))
    assert isinstance(model.head, nn.Identity) and model.num_labels == len(tw.words)
    assert model.pooling == "last" and model.features(batch).shape == (2, 16)
    assert type(model.backbone).__name__ == "LlamaForCausalLM"


def test_same_seed_same_head(tiny_bert_dir, tw):
    heads = []
    for _ in range(2):
        torch.manual_seed(3)
        heads.append(load_model(tw.cfg(tiny_bert_dir), 3)[0].head[1].weight)
    assert torch.equal(*heads)


def test_dropout_override(tiny_bert_dir, tiny_llama_dir, tw):
    model, _ = load_model(tw.cfg(tiny_bert_dir, dropout=0.0), 2)
    drops = [m.p for m in model.backbone.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(p == 0.0 for p in drops)
    assert model.backbone.config.hidden_dropout_prob == 0.0
    assert model.backbone.config.attention_probs_dropout_prob == 0.0
    llama, _ = load_model(tw.cfg(tiny_llama_dir, task="causal_lm", dropout=0.3), None)
    assert llama.backbone.config.attention_dropout == 0.3
    assert llama.backbone.model.layers[0].self_attn.attention_dropout == 0.3   # a float, not nn.Dropout
    untouched, _ = load_model(tw.cfg(tiny_bert_dir), 2)
    assert untouched.backbone.config.hidden_dropout_prob == 0.1


def test_modality_mismatch(tiny_bert_dir, tw):
    with pytest.raises(ModelLoadError, match="text model"):
        load_model(tw.cfg(tiny_bert_dir, task="image_classification"), 3)


def test_factory_features_mlp(factory_module, tw):
    cfg = tw.cfg(f"{factory_module}:mlp", factory_kwargs={"in_dim": 5, "width": 7})
    model, pre = load_model(cfg, num_labels=3)
    assert pre is None and model.modality == "tensor" and model.hidden_size == 7
    assert model({"inputs": torch.randn(4, 5)}).shape == (4, 3)


def test_factory_cnn_dry_run_and_image_spec(factory_module, tw):
    model, spec = load_model(tw.cfg(f"{factory_module}:cnn", task="image_classification"), num_labels=2)
    assert model.hidden_size == 4 and model.modality == "image"
    assert isinstance(spec, ImageSpec) and spec.scale == "none"
    assert model({"pixel_values": torch.randn(3, 3, 8, 8)}).shape == (3, 2)


def test_factory_logits_used_as_is(factory_module, tw):
    model, _ = load_model(tw.cfg(f"{factory_module}:logits_mlp", factory_outputs="logits"), num_labels=3)
    assert isinstance(model.head, nn.Identity)
    x = torch.randn(2, 6)
    assert torch.equal(model({"inputs": x}), model.backbone(x))


@pytest.mark.parametrize("fn,match", [
    ("no_dim", "feature_dim"), ("not_a_module", "not a torch.nn.Module"), ("missing_fn", "no callable")])
def test_factory_errors(fn, match, factory_module, tw):
    with pytest.raises(ModelLoadError, match=match):
        load_model(tw.cfg(f"{factory_module}:{fn}"), num_labels=2)


def test_factory_import_error(tw):
    with pytest.raises(ModelLoadError, match="cannot import module 'no_such_pkg_xyz.mod'"):
        load_model(tw.cfg("no_such_pkg_xyz.mod:build"), num_labels=2)


def test_image_spec_normalize():
    spec = ImageSpec.preset("minus_one_to_one")
    x = torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 3).expand(3, 1, 3)   # (3, H=1, W=3)
    assert torch.allclose(spec.normalize(x), x * 2 - 1)
    assert ImageSpec.from_dict(spec.to_dict()) == spec


def test_broken_config_json(tw, tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_model(tw.cfg(tmp_path), num_labels=2)


def test_hub_id_loads_from_the_hf_cache_offline(tiny_bert_dir, tw, tmp_path, monkeypatch):
    """A hub id that was downloaded before loads with no network (HF's cache layout, faked here)."""
    import shutil

    from huggingface_hub import constants
    sha = "0" * 40
    snap = tmp_path / "hub" / "models--tw-test--tiny-bert" / "snapshots" / sha
    shutil.copytree(tiny_bert_dir, snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(sha)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = load_model(tw.cfg("tw-test/tiny-bert"), num_labels=2)
    assert model.pooling == "cls" and model(tw.batch(tok)).shape == (2, 2)


def test_image_spec_is_the_image_preprocessor(tmp_path):
    """build_data calls the preprocessor: an ImageSpec runs data.images.ImagePreprocessor."""
    import numpy as np
    spec = ImageSpec.preset("minus_one_to_one", size=8)
    img = np.full((4, 6, 3), 255, dtype=np.uint8)          # white, not square
    x = spec(img)
    assert x.shape == (3, 8, 8) and torch.allclose(x, torch.ones(3, 8, 8))
    custom = ImageSpec(size=8, mean=(0.25, 0.25, 0.25), std=(0.5, 0.5, 0.5))
    assert custom.scale == "mean_std" and torch.allclose(custom(img), torch.full((3, 8, 8), 1.5))


def test_hf_vision_folder(tw, tmp_path):
    """An HF vision folder (tiny ViT) for image_classification: CLS features, its own mean/std."""
    import json

    from transformers import ViTConfig, ViTModel

    from tunewright.models import load_run_model, save_run_model
    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32)).save_pretrained(tmp_path / "vit")
    (tmp_path / "vit" / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 16, "width": 16}, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}))
    model, spec = load_model(tw.cfg(tmp_path / "vit", task="image_classification"), num_labels=3)
    assert model.modality == "image" and spec.size == 16 and spec.scale == "imagenet"
    batch = {"pixel_values": torch.randn(2, 3, 16, 16)}
    model.eval()
    with torch.no_grad():
        logits = model(batch)
        assert logits.shape == (2, 3)
        assert torch.equal(model.features(batch), model.backbone(**batch).last_hidden_state[:, 0])
        again, spec2, _ = load_run_model(save_run_model(model, tmp_path / "m", None, None, spec))
        assert torch.equal(again(batch), logits) and spec2 == spec


def test_attention_dropout_auto_is_off_for_peft_methods_only(tiny_bert_dir, tiny_llama_dir, tw):
    # auto: 0 while a PEFT method trains (SDPA's fused CPU kernel needs dropout 0), the model's own
    # value otherwise; hidden dropout is never touched by it; a number or `dropout` still applies.
    def attn_ps(model):
        return [m.dropout.p for m in model.backbone.modules() if type(m).__name__ == "BertSelfAttention"]

    full, _ = load_model(tw.cfg(tiny_bert_dir), 2)
    assert attn_ps(full) == [0.1, 0.1] and full.backbone.config.attention_probs_dropout_prob == 0.1
    cfg = tw.cfg(tiny_bert_dir)
    cfg.method = "lora"
    lora, _ = load_model(cfg, 2)
    assert attn_ps(lora) == [0.0, 0.0] and lora.backbone.config.hidden_dropout_prob == 0.1
    cfg = tw.cfg(tiny_bert_dir, dropout=0.2, attention_dropout=0.3)
    cfg.method = "lora"
    both, _ = load_model(cfg, 2)
    assert attn_ps(both) == [0.3, 0.3] and both.backbone.config.hidden_dropout_prob == 0.2
    cfg = tw.cfg(tiny_llama_dir, task="causal_lm", dropout=0.3)
    cfg.method = "lora"
    llama, _ = load_model(cfg, None)
    assert llama.backbone.model.layers[0].self_attn.attention_dropout == 0.0
    cfg = tw.cfg(tiny_bert_dir, attention_dropout="keep")
    with pytest.raises(ConfigError, match="model.attention_dropout: 'keep'"):
        validate(cfg)


def test_attention_dropout_null_keeps_the_models_value(tiny_bert_dir, tw):
    from tunewright.config.load import config_from_dict
    cfg = config_from_dict({"model": {"name": str(tiny_bert_dir), "attention_dropout": None}, "method": "lora"})
    model, _ = load_model(cfg, 2)
    assert [m.dropout.p for m in model.backbone.modules() if type(m).__name__ == "BertSelfAttention"] == [0.1, 0.1]


def test_load_tokenizer_alone_equals_load_models_and_builds_no_model(tiny_bert_dir, tw, monkeypatch):
    from tunewright.models import load as load_mod
    from tunewright.models import load_tokenizer
    cfg = tw.cfg(tiny_bert_dir)
    ref = load_model(cfg, num_labels=2)[1]

    def no_model(*a, **k):
        raise AssertionError("load_tokenizer built the model")
    monkeypatch.setattr(load_mod, "build_task_model", no_model)
    tok = load_tokenizer(cfg)
    text = "the striker scored twice in the final minutes"
    assert tok(text)["input_ids"] == ref(text)["input_ids"] and tok.pad_token_id == ref.pad_token_id
