"""tunewright's own adapter layers (peft/layers.py) on the modules peft's LoRA cannot wrap."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tunewright.peft.layers import AdapterLayer, Bottleneck, LoraLayer


class SamePadConv(nn.Conv2d):
    """Like EfficientNet's Conv2dStaticSamePadding: a conv subclass that pads in its own forward and
    whose constructor takes other arguments (peft builds `type(base)(in, r, k, stride, padding)`)."""

    def __init__(self, cin, cout, k, stride=1, image_size=None, **kw):
        super().__init__(cin, cout, k, stride, padding=0, **kw)
        assert image_size is not None
        self.static_padding = nn.ZeroPad2d(k // 2)

    def forward(self, x):
        return F.conv2d(self.static_padding(x), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _trained(layer: LoraLayer):
    with torch.no_grad():
        for p in layer.lora_B.parameters():
            p.normal_()
        for p in layer.lora_magnitude_vector.parameters():
            p.mul_(1.5)
    return layer


@pytest.mark.parametrize("base", [
    nn.Linear(6, 5),
    nn.Conv2d(4, 6, 3, padding=1),
    SamePadConv(4, 6, 3, stride=2, image_size=8),
    SamePadConv(6, 6, 5, image_size=8, groups=6),          # depthwise
], ids=["linear", "conv", "same-pad-stride2", "depthwise"])
@pytest.mark.parametrize("dora", [False, True])
def test_lora_equals_base_at_init_then_merges_exactly(base, dora):
    torch.manual_seed(0)
    x = torch.randn(3, 6) if isinstance(base, nn.Linear) else torch.randn(2, base.in_channels, 8, 8)
    ref = base(x).detach()
    layer = LoraLayer(base)
    layer.add_adapter("a", r=2, alpha=4, use_dora=dora)
    assert torch.allclose(layer(x), ref, atol=1e-6)                  # B = 0: the base model
    _trained(layer)
    y = layer(x).detach()
    assert not torch.allclose(y, ref, atol=1e-4)
    if not dora:  # LoRA's definition: the base module run with W + (alpha / r) B A
        w = base.weight + 2.0 * (layer.lora_B["a"].weight.flatten(1) @ layer.lora_A["a"].weight.flatten(1)).view_as(base.weight)
        expect = F.linear(x, w, base.bias) if isinstance(base, nn.Linear) else \
            torch.func.functional_call(base, {"weight": w}, (x,))
        assert torch.allclose(y, expect, atol=1e-5)
    w0 = base.weight.detach().clone()
    layer.merge()
    assert torch.allclose(layer(x), y, atol=1e-5)
    layer.unmerge()
    assert torch.allclose(base.weight, w0, atol=1e-6) and torch.allclose(layer(x), y, atol=1e-5)


def test_rslora_scaling_and_several_adapters():
    layer = LoraLayer(nn.Linear(4, 4))
    layer.add_adapter("a", r=4, alpha=8)
    layer.add_adapter("b", r=4, alpha=8, use_rslora=True)
    assert layer.scaling == {"a": 2.0, "b": 8 / math.sqrt(4)}
    assert layer.adapter_names() == ["a", "b"] and layer.active == "b"
    layer.set_adapter("a")
    layer.merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        layer.set_adapter("b")


def test_peft_names_and_shapes_for_conv():
    layer = LoraLayer(nn.Conv2d(3, 8, 3))
    layer.add_adapter("default", r=4, alpha=4)
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes["lora_A.default.weight"] == (4, 3, 3, 3) and shapes["lora_B.default.weight"] == (8, 4, 1, 1)


@pytest.mark.parametrize("shape,axis", [((2, 5, 16), -1), ((2, 16, 4, 4), 1)])
def test_bottleneck_starts_as_identity_on_tokens_and_feature_maps(shape, axis):
    torch.manual_seed(0)
    h = torch.randn(*shape)
    b = Bottleneck(16, 4, "gelu", channel_dim=axis)
    assert torch.equal(b(h), h)
    nn.init.normal_(b.up.weight)
    assert b(h).shape == h.shape and not torch.allclose(b(h), h)


def test_adapter_layer_wraps_tuple_outputs_and_refuses_merge():
    class Block(nn.Module):
        def forward(self, x, scale=1.0):
            return (x * scale, "cache")
    layer = AdapterLayer(Block())
    layer.add_adapter("a", 8, 2, "relu", -1)
    x = torch.randn(2, 3, 8)
    out = layer(x, scale=2.0)
    assert torch.equal(out[0], 2 * x) and out[1] == "cache"
    with pytest.raises(NotImplementedError, match="non-linear"):
        layer.merge()


CONVS = {
    "conv": lambda: nn.Conv2d(4, 6, 3, padding=1),
    "same-pad-stride2": lambda: SamePadConv(4, 6, 3, stride=2, image_size=8),
    "depthwise": lambda: SamePadConv(6, 6, 5, image_size=8, groups=6),
    "grouped-dilated": lambda: nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
    "1x1-no-bias": lambda: nn.Conv2d(6, 8, 1, bias=False),
    "conv1d-reflect": lambda: nn.Conv1d(4, 6, 3, padding=1, padding_mode="reflect"),
}


@pytest.mark.parametrize("path", ["weight", "activation"])
@pytest.mark.parametrize("kind", list(CONVS))
def test_conv_paths_match_the_merged_weight_definition_and_its_gradients(kind, path):
    """Both ways of computing a conv LoRA give LoRA's definition, base(W + s B A)(x), and its gradients."""
    torch.manual_seed(0)
    base = CONVS[kind]().requires_grad_(False)
    x = torch.randn(2, base.in_channels, *([9] * (base.weight.dim() - 2)), requires_grad=True)
    layer = _trained(LoraLayer(base))
    layer.add_adapter("a", r=3, alpha=6)
    with torch.no_grad():
        layer.lora_B["a"].weight.normal_()
    layer.conv_path = path
    a, b = layer.lora_A["a"].weight, layer.lora_B["a"].weight
    y = layer(x)
    g = torch.randn_like(y)
    grads = torch.autograd.grad((y * g).sum(), (a, b, x))

    ra, rb, rx = (t.detach().clone().requires_grad_(True) for t in (a, b, x))
    w = base.weight + 2.0 * (rb.flatten(1) @ ra.flatten(1)).view_as(base.weight)
    ref = torch.func.functional_call(base, {"weight": w}, (rx,))
    ref_grads = torch.autograd.grad((ref * g).sum(), (ra, rb, rx))
    assert torch.allclose(y, ref, atol=1e-5) and y.is_contiguous()        # in the caller's layout
    assert layer._nhwc_depthwise(x) == (kind == "depthwise")             # so the NHWC route is covered too
    for got, expect in zip(grads, ref_grads):
        assert torch.allclose(got, expect, atol=1e-4, rtol=1e-4)
    assert base.weight.grad is None


def test_auto_conv_path_follows_cost_and_grad_mode():
    wide = LoraLayer(nn.Conv2d(1152, 320, 1, bias=False).requires_grad_(False))
    depthwise = LoraLayer(nn.Conv2d(192, 192, 5, groups=192, bias=False).requires_grad_(False))
    narrow = LoraLayer(nn.Conv2d(3, 32, 3, stride=2, bias=False).requires_grad_(False))
    for layer in (wide, depthwise, narrow):
        layer.add_adapter("a", r=8, alpha=16)
    assert wide._conv_path("a") == "activation"          # 1x1 GEMM weight gradient saved
    assert depthwise._conv_path("a") == "weight" and narrow._conv_path("a") == "weight"
    with torch.no_grad():
        assert wide._conv_path("a") == "weight"           # inference: one conv with W + s B A
    wide.base_layer.weight.requires_grad_(True)
    assert wide._conv_path("a") == "weight"               # a trained base needs its weight gradient anyway
