"""The packaged models, for real: a forward pass or two each (marked `assets`).

SmolLM2's first load converts the GGUF into the user cache (~25 s once); later runs reuse it.
"""
import pytest
import torch

from tunewright.assets.models import get_model_asset
from tunewright.models import load_model, load_run_model, save_run_model

pytestmark = pytest.mark.assets


def needs(name):
    if not get_model_asset(name).is_installed():
        pytest.skip(f"{name} is not installed ({get_model_asset(name).install})")


def test_minilm_auto_pooling_is_mean_and_features_match_manual(tw):
    needs("minilm")
    from transformers import AutoModel
    model, tok = load_model(tw.cfg("minilm"), 2)
    assert model.pooling == "mean" and model.hidden_size == 384
    model.eval()
    batch = tw.batch(tok, ["the capital of france is paris", "a cat"])
    ref = AutoModel.from_pretrained(get_model_asset("minilm").path()).eval()
    with torch.no_grad():
        states = ref(**batch).last_hidden_state                        # (B, T, 384)
        mask = batch["attention_mask"].unsqueeze(-1).float()
        manual = (states * mask).sum(1) / mask.sum(1)
        assert torch.allclose(model.features(batch), manual, atol=1e-5)


def test_efficientnet_sees_a_daisy(tw):
    """Backbone + ImageNet classifier weights in our head: sklearn's flower.jpg is class 985 (daisy)."""
    needs("efficientnet-lite0")
    from pathlib import Path

    import sklearn
    flower = Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg"
    if not flower.exists():
        pytest.skip("sklearn's flower.jpg is not installed")
    model, spec = load_model(tw.cfg("efficientnet-lite0", task="image_classification"), 1000)
    state = torch.load(get_model_asset("efficientnet-lite0").path(), map_location="cpu", weights_only=True)
    model.head[1].load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    x = spec(flower).unsqueeze(0)             # the data package's PIL pipeline: (1, 3, 224, 224), x*2-1
    assert x.min() >= -1 and x.max() <= 1
    model.eval()
    with torch.no_grad():
        logits = model({"pixel_values": x})
    assert logits.shape == (1, 1000) and int(logits.argmax()) == 985


def test_smollm2_cache_reloads_and_knows_paris(tw, tmp_path):
    needs("smollm2-135m")
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = get_model_asset("smollm2-135m").prepare()                   # converts once, then cached
    config = (folder / "config.json").read_text()
    assert "quantization_config" not in config and (folder / "model.safetensors").is_file()
    t = time.perf_counter()
    model, tok = load_model(tw.cfg("smollm2-135m", task="causal_lm"), None)
    assert time.perf_counter() - t < 15                                  # the cache, not the GGUF
    assert tok.chat_template and tok.pad_token is not None
    lm = model.backbone.eval()
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = lm.generate(**enc, max_new_tokens=6, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:])
    assert "Paris" in text
    # The folder is a normal HF folder: transformers alone reloads it.
    again = AutoModelForCausalLM.from_pretrained(folder)
    assert again.lm_head.weight is again.model.embed_tokens.weight
    assert AutoTokenizer.from_pretrained(folder).chat_template


def test_smollm2_save_reload_same_logits(tw, tmp_path):
    needs("smollm2-135m")
    model, tok = load_model(tw.cfg("smollm2-135m", task="causal_lm"), None)
    batch = tw.batch(tok, ["Hello there", "The capital of France is"])
    model.eval()
    with torch.no_grad():
        before = model(batch)
    again, tok2, _ = load_run_model(save_run_model(model, tmp_path / "m", None, None, tok))
    with torch.no_grad():
        assert torch.equal(before, again(batch))
    assert tok2.chat_template == tok.chat_template
