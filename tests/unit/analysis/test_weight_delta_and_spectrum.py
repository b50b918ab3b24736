import numpy as np
import pytest
import torch

from tunewright.analysis.lora_spectrum import effective_rank, lora_updates, spectrum
from tunewright.analysis.robustness import corrupt_image, corrupt_texts
from tunewright.analysis.weight_delta import relative_change


def test_relative_change_per_group():
    before = {"a": torch.ones(2, 2), "b": torch.ones(3)}
    after = {"a": torch.ones(2, 2) * 1.5, "b": torch.ones(3)}
    out = relative_change(before, after, {"g1": ["a"], "g2": ["b"]})
    assert out["g1"] == pytest.approx(0.5)
    assert out["g2"] == 0.0


def test_effective_rank_bounds():
    assert effective_rank([1, 1, 1, 1]) == pytest.approx(4.0)
    assert effective_rank([1, 0, 0]) == pytest.approx(1.0)
    assert 1 < effective_rank([3, 1, 0.1]) < 3


def test_lora_update_spectrum_has_rank_r():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 16))
    model = get_peft_model(net, LoraConfig(r=3, target_modules=["0"], lora_alpha=3))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p)                       # B starts at zero; give it a value
    ups = lora_updates(model)
    assert len(ups) == 1
    (delta,) = ups.values()
    assert delta.shape == (16, 16)
    s = spectrum(ups)
    (d,) = s.values()
    assert np.sum(np.array(d["sigma"]) > 1e-5) == 3       # a rank-3 update
    assert 1 <= d["effective_rank"] <= 3


def test_corruptions_are_seeded_and_grow_with_severity():
    texts = ["the quick brown fox jumps over the lazy dog"] * 20
    assert corrupt_texts(texts, "char_noise", 2, seed=1) == corrupt_texts(texts, "char_noise", 2, seed=1)
    kept = [sum(len(t.split()) for t in corrupt_texts(texts, "word_dropout", s)) for s in (1, 2, 3)]
    assert kept[0] > kept[1] > kept[2]
    img = np.random.default_rng(0).random((8, 8, 3))
    for kind in ("gaussian_noise", "blur", "contrast"):
        errs = [np.abs(corrupt_image(img, kind, s) - img).mean() for s in (1, 2, 3)]
        assert errs[0] < errs[2], kind
        assert corrupt_image(img, kind, 1).shape == img.shape


def test_conv_lora_update_of_own_layers_has_rank_r():
    """tunewright's LoraLayer on a 3x3 convolution (as on EfficientNet): ΔW flattened to (out, in*k*k)."""
    from tunewright.peft.layers import LoraLayer

    torch.manual_seed(0)
    layer = LoraLayer(torch.nn.Conv2d(6, 10, 3, padding=1))
    layer.add_adapter("default", r=2, alpha=4)
    torch.nn.init.normal_(layer.lora_B["default"].weight)
    net = torch.nn.Sequential(layer)
    (delta,) = lora_updates(net).values()
    assert delta.shape == (10, 6 * 9)
    assert torch.allclose(delta, layer.delta("default").flatten(1))
    (d,) = spectrum({"c": delta}).values()
    assert len(d["sigma"]) == 2 and 1 <= d["effective_rank"] <= 2


def test_adalora_update_includes_e_and_ranknum():
    from peft import AdaLoraConfig, get_peft_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 12))
    model = get_peft_model(net, AdaLoraConfig(init_r=4, target_r=2, lora_alpha=8, target_modules=["0"],
                                              total_step=10))
    layer = next(m for m in model.modules() if hasattr(m, "lora_E"))
    for p in (layer.lora_B["default"], layer.lora_E["default"]):
        torch.nn.init.normal_(p)
    (delta,) = lora_updates(model).values()
    x = torch.randn(5, 12)
    layer.eval()
    with torch.no_grad():
        expected = layer(x) - layer.base_layer(x)            # what the layer adds: ΔW x
    assert torch.allclose(x @ delta.T, expected, atol=1e-5)
