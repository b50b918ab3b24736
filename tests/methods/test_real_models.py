"""Methods on the packaged pretrained models (a forward pass or two each, no training)."""
from __future__ import annotations

import copy

import pytest
import torch

from tunewright.assets.models import get_model_asset
from tunewright.config.schema import Config
from tunewright.models import load_model
from tunewright.peft import apply_method, can_merge, merge_report

pytestmark = pytest.mark.assets


def _cnn(method: str, **opts):
    if not get_model_asset("efficientnet-lite0").is_installed():
        pytest.skip("efficientnet-lite0 is not installed")
    cfg = Config(task="image_classification", method=method)
    cfg.model.name = "efficientnet-lite0"
    for key, value in opts.items():
        setattr(getattr(cfg, method), key, value)
    model, _ = load_model(cfg, num_labels=3)
    return cfg, model.eval()


@pytest.mark.parametrize("method,opts", [("lora", {}), ("lora", {"use_dora": True}), ("adapter", {}),
                                         ("ia3", {})], ids=["lora", "dora", "adapter", "ia3"])
def test_efficientnet_methods_start_as_the_base_and_merge(method, opts):
    """LoRA on every EfficientNet conv (static 'same' padding, depthwise too), adapters after each block."""
    cfg, model = _cnn(method, **opts)
    torch.manual_seed(0)
    batch = {"pixel_values": torch.randn(1, 3, 224, 224)}
    base = copy.deepcopy(model)
    apply_method(model, cfg)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(batch), base(batch), atol=1e-5)
        for n, p in model.named_parameters():               # as if trained
            if "lora_B" in n or ".adapter." in n and n.endswith("up.weight") or "ia3_l" in n:
                p.add_(torch.randn_like(p) * 1e-2)
        if method == "adapter":
            assert not can_merge(model) and sum(".adapter." in n for n, _ in model.named_parameters()) == 16 * 4
            return
        report = merge_report(model, batch)
    assert report["max_abs_logit_diff"] < 1e-4 * max(1.0, report["max_abs_logit"])
    if method == "lora":
        convs = [n for n, _ in model.named_parameters() if n.endswith("lora_A.default.weight")]
        assert any("_depthwise_conv" in n for n in convs) and any("_conv_stem" in n for n in convs)
