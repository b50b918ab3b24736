"""tunewright's own adapter layers: drop-in wrappers around one module, used where peft has none.

- ``LoraLayer`` wraps an ``nn.Linear`` or ``nn.ConvNd`` of ANY subclass: peft builds its LoRA
  convolutions as ``type(base)(in, r, kernel, stride, padding)``, which breaks on subclasses
  with another constructor or their own padding (EfficientNet's ``Conv2dStaticSamePadding``)
  and on grouped/depthwise convolutions (``r % groups`` must be 0, and merging is refused).
- ``AdapterLayer`` adds a bottleneck adapter to whatever a module returns (peft has no
  bottleneck adapters; see adapter.py).

Both keep one set of weights per adapter name (``ModuleDict``s keyed by name, as peft does), an
active name (``None``: the base module alone), and ``merge()`` / ``unmerge()`` where merging is
defined. Parameter names follow peft's: ``<path>.base_layer.weight``, ``<path>.lora_A.<name>.weight``,
so the same name rules (and peft's file format) serve both.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..config import declared

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "tanh": nn.Tanh}
declared.declare("adapter.activation", ACTIVATIONS)   # config checks `adapter.activation:` against these names
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
# Convolutions whose forward is exactly ``self._conv_forward(x, self.weight, self.bias)``: there we call
# that with another weight directly; any other forward (subclasses) runs through functional_call.
_PLAIN_CONV_FORWARDS = {nn.Conv1d.forward, nn.Conv2d.forward, nn.Conv3d.forward}


class _Weight(nn.Module):
    """A bare ``weight`` parameter, so names read ``lora_A.<name>.weight`` as in peft."""

    def __init__(self, *shape: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(*shape))


class LoraLayer(nn.Module):
    """LoRA (Hu et al. 2021, arXiv:2106.09685) on one linear or convolution layer::

        y = base(x) + s * B(A(dropout(x)))          s = alpha / r  (rsLoRA: alpha / sqrt(r))

    Linear: A (r, in), B (out, r), computed on activations. Convolutions are defined through the
    weight, ``y = base_with_weight(W + s * B @ A)(x)`` with A (r, in/groups, *k) and B (out, r, 1...),
    the module's own forward (static "same" padding, groups, dilation) running unchanged; dropout is
    not applied there. Shapes for ``groups == 1`` are peft's, so peft loads those files.
    A convolution is linear in its weight, so the same output has two ways to compute it (``_conv_path``):

    - "weight": one conv with W + s * B @ A. Its backward needs the conv's full weight gradient
      dL/dW' (out * in/g * k... MACs per output position, as much as the forward) to get dA, dB.
    - "activation": ``base(x) + s * conv1x1(conv_A(x), B)``: conv_A is the base forward with weight A
      (repeated per group, no bias; same padding, stride and dilation), B a grouped 1x1 conv. The base
      conv then needs only its input gradient; the low-rank path costs ~3 * r * (in * k... + out).

    Training picks by layer shape (``_conv_path``): the activation path only on very wide ungrouped
    convs (measured: elsewhere small-r convs are too slow to win), the weight path on depthwise and
    narrow convs (for depthwise the low-rank path would cost r base convs) and always without gradients
    (eval: one conv with the summed weight). Both are exact up to rounding. Depthwise convs on small
    maps train in channels-last layout on CPU (``_nhwc_depthwise``), where PyTorch's backward is faster.
    DoRA (Liu et al. 2024, arXiv:2402.09353): ``W' = m * (W + s * B @ A) / ||W + s * B @ A||`` with
    the norm per output unit taken as a constant (detached), as in the paper and peft.
    A is Kaiming-uniform and B zero, so at init the layer equals its base.
    """

    def __init__(self, base: nn.Module):
        super().__init__()
        if not isinstance(base, (nn.Linear, nn.modules.conv._ConvNd)):
            raise TypeError(f"LoRA wraps nn.Linear or nn.Conv*d, not {type(base).__name__}")
        self.base_layer = base
        self.lora_A, self.lora_B = nn.ModuleDict(), nn.ModuleDict()
        self.lora_magnitude_vector = nn.ModuleDict()
        self.lora_dropout = nn.ModuleDict()
        self.scaling: dict[str, float] = {}
        self.active: Optional[str] = None
        self.merged: Optional[str] = None
        self._pre_merge: Optional[torch.Tensor] = None   # DoRA: the weight before merging (exact unmerge)
        self.conv_path = "auto"      # "auto" | "weight" | "activation" (tests and benchmarks force one)

    @property
    def is_conv(self) -> bool:
        return isinstance(self.base_layer, nn.modules.conv._ConvNd)

    def add_adapter(self, name: str, r: int, alpha: float, dropout: float = 0.0, use_rslora: bool = False,
                    use_dora: bool = False) -> None:
        w = self.base_layer.weight                                     # (out, in) | (out, in/groups, *k)
        if self.is_conv:
            self.lora_A[name] = _Weight(r, *w.shape[1:])
            self.lora_B[name] = _Weight(w.shape[0], r, *([1] * (w.dim() - 2)))
        else:
            self.lora_A[name] = nn.Linear(w.shape[1], r, bias=False)
            self.lora_B[name] = nn.Linear(r, w.shape[0], bias=False)
        nn.init.kaiming_uniform_(self.lora_A[name].weight, a=math.sqrt(5))  # as nn.Linear, microsoft/LoRA, peft
        nn.init.zeros_(self.lora_B[name].weight)
        self.lora_A[name].to(w.device, w.dtype)
        self.lora_B[name].to(w.device, w.dtype)
        self.lora_dropout[name] = nn.Dropout(dropout) if dropout > 0 and not self.is_conv else nn.Identity()
        self.scaling[name] = alpha / (math.sqrt(r) if use_rslora else r)
        if use_dora:
            norm = self._norm(w.detach())                                # (out,)
            shape = (1, -1, *([1] * (w.dim() - 2))) if self.is_conv else (-1,)  # peft's shapes
            self.lora_magnitude_vector[name] = _Weight(1)
            self.lora_magnitude_vector[name].weight = nn.Parameter(norm.reshape(shape).clone())
        self.active = name

    def adapter_names(self) -> list[str]:
        return list(self.lora_A.keys())

    def set_adapter(self, name: Optional[str]) -> None:
        if self.merged is not None:
            raise RuntimeError("unmerge before switching adapters")
        self.active = name

    # --- the update ---------------------------------------------------------------------------
    @staticmethod
    def _norm(w: torch.Tensor) -> torch.Tensor:
        return w.flatten(1).norm(dim=1)                                 # (out,) L2 norm per output unit

    def delta(self, name: str) -> torch.Tensor:
        """s * B @ A, shaped like the base weight."""
        w = self.base_layer.weight
        a = self.lora_A[name].weight.flatten(1)                          # (r, in*)
        b = self.lora_B[name].weight.flatten(1)                          # (out, r)
        return (b @ a).view_as(w) * self.scaling[name]

    def _dora_weight(self, name: str, w: torch.Tensor) -> torch.Tensor:
        v = w + self.delta(name)
        # The norm is a constant (detached), as in DoRA eq. 5; clamped, because pretrained CNNs have
        # all-zero filters (EfficientNet-Lite0 does), where m = ||w|| = 0 and 0 / 0 would be NaN.
        norm = self._norm(v).detach().clamp_min(1e-12)
        m = self.lora_magnitude_vector[name].weight.reshape(-1)
        return (m / norm).view(-1, *([1] * (w.dim() - 1))) * v

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        name = self.active
        if name is None or self.merged is not None:
            return self.base_layer(x, *args, **kwargs)
        w = self.base_layer.weight
        if name in self.lora_magnitude_vector:
            return self._with_weight(self._dora_weight(name, w), x, args, kwargs)
        if self.is_conv:
            if self._conv_path(name) == "weight":
                if not self._nhwc_depthwise(x):
                    return self._with_weight(w + self.delta(name), x, args, kwargs)
                y = self._with_weight(w + self.delta(name), x.contiguous(memory_format=torch.channels_last), args, kwargs)
                return y.contiguous(memory_format=torch.contiguous_format)   # the caller's (NCHW) layout
            base, a, b = self.base_layer, self.lora_A[name].weight, self.lora_B[name].weight
            a = a.repeat(base.groups, *([1] * (a.dim() - 1))) if base.groups > 1 else a   # (g*r, in/g, *k)
            h = self._with_weight(a, x, args, kwargs, no_bias=True)                     # (N, g*r, *spatial)
            up = _CONV[a.dim() - 2](h, b, None, 1, 0, 1, base.groups)                   # (N, out, *spatial)
            return base(x, *args, **kwargs) + up * self.scaling[name]
        out = self.base_layer(x, *args, **kwargs)
        h = self.lora_A[name](self.lora_dropout[name](x))               # (..., r)
        return out + self.lora_B[name](h) * self.scaling[name]          # (..., out)

    def _with_weight(self, weight: torch.Tensor, x: torch.Tensor, args: tuple, kwargs: dict,
                     no_bias: bool = False) -> torch.Tensor:
        """The base module's forward with ``weight`` for its weight (and no bias if ``no_bias``).
        Plain nn.ConvNd: its ``_conv_forward`` directly; anything else (a subclass with its own
        padding): ``functional_call``, which swaps the parameters in for the call (more Python work)."""
        base = self.base_layer
        bias = None if no_bias else base.bias
        if type(base).forward in _PLAIN_CONV_FORWARDS and not args and not kwargs:
            return base._conv_forward(x, weight, bias)
        params = {"weight": weight, **({"bias": None} if no_bias and base.bias is not None else {})}
        return functional_call(base, params, (x, *args), kwargs)

    def _nhwc_depthwise(self, x: torch.Tensor) -> bool:
        """Train a depthwise 2d conv on CPU in channels-last layout. PyTorch's CPU (oneDNN) depthwise
        backward is far slower on NCHW tensors than on NHWC ones: on EfficientNet-Lite0's depthwise convs
        (batch 32, 96 px, 1 thread) the weight gradient took 23 ms vs 14 (1152 ch, 7x7 in, k5), 8.3 vs 2.5
        (96 ch, 49x49, k3, stride 2), the input gradient 8.5 vs 5.8, while the forward takes 1-7 ms; the
        weight gradient is the one LoRA needs (for dA, dB). The layout copies (x, y and their gradients)
        cost less there, but not on large maps: fwd+bwd of the whole layer went 39 -> 30 ms (k5, 24x24 in,
        stride 2), 45 -> 23 (k5, 6x6), 32 -> 16 (k5, 3x3), but 19 -> 29 (k3, 48x48) and 32 -> 37 (k3,
        24x24); so only where the output has at most 16x16 positions (the wins had <= 12x12, the losses
        >= 24x24). Same numbers up to rounding; the output is handed back in the input's NCHW layout."""
        base = self.base_layer
        if not (x.dim() == 4 and x.device.type == "cpu" and torch.is_grad_enabled() and base.groups > 1
                and base.groups == base.in_channels and x.is_contiguous()):
            return False
        return (x.shape[-2] // base.stride[0]) * (x.shape[-1] // base.stride[1]) <= 16 * 16

    def _conv_path(self, name: str) -> str:
        """"weight" or "activation" (see the class docstring), by multiply-adds per output position.

        Weight path: the conv's weight gradient, F = out * in/g * K (K = kernel size), is the cost the
        other path avoids. Activation path: forward, input gradient and weight gradient of conv_A
        (r * in * K each) and of the 1x1 B conv (out * r each): 3 * low_rank by that count. Measured on CPU
        (EfficientNet-Lite0, r=8), small-r convs run far below peak, so the activation path only won
        where F > 24 * low_rank (the 1152->320 and 320->1280 1x1 convs): that is the rule.
        No adapter gradient to compute (eval, frozen adapter): one conv with the summed weight is cheapest."""
        if self.conv_path != "auto":
            return self.conv_path
        base = self.base_layer
        trains = self.lora_A[name].weight.requires_grad or self.lora_B[name].weight.requires_grad
        if not (torch.is_grad_enabled() and trains) or base.weight.requires_grad or base.transposed:
            return "weight"          # (a trained base weight needs the full weight gradient anyway)
        r, k = self.lora_A[name].weight.shape[0], math.prod(base.kernel_size)
        full = base.out_channels * base.in_channels // base.groups * k
        low_rank = r * base.in_channels * k + base.out_channels * r
        return "activation" if full > 24 * low_rank else "weight"

    # --- merge --------------------------------------------------------------------------------
    @torch.no_grad()
    def merge(self) -> None:
        """Fold the active adapter into the base weight (W += s * B @ A; DoRA: W = W')."""
        name = self.active
        if name is None or self.merged is not None:
            return
        w = self.base_layer.weight
        if name in self.lora_magnitude_vector:
            self._pre_merge = w.detach().clone()        # W' = m V / ||V|| is not invertible where m = 0
            w.copy_(self._dora_weight(name, w))
        else:
            w.add_(self.delta(name))
        self.merged = name

    @torch.no_grad()
    def unmerge(self) -> None:
        name = self.merged
        if name is None:
            return
        w = self.base_layer.weight
        if name in self.lora_magnitude_vector:
            w.copy_(self._pre_merge)
            self._pre_merge = None
        else:
            w.sub_(self.delta(name))
        self.merged = None


class Bottleneck(nn.Module):
    """``h + up(act(down(h)))`` over the feature axis: the last one for tokens ``(B, T, H)``,
    axis 1 for feature maps ``(B, C, H, W)``. ``up`` starts at zero, so it starts as the identity."""

    def __init__(self, dim: int, reduction_factor: int, activation: str, channel_dim: int = -1):
        super().__init__()
        hidden = max(1, dim // reduction_factor)
        self.down, self.act, self.up = nn.Linear(dim, hidden), ACTIVATIONS[activation](), nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.channel_dim = channel_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = h if self.channel_dim == -1 else h.movedim(self.channel_dim, -1)     # (..., dim)
        x = self.up(self.act(self.down(x)))
        return h + (x if self.channel_dim == -1 else x.movedim(-1, self.channel_dim))


class AdapterLayer(nn.Module):
    """A module followed by a bottleneck adapter on its output (the first element of a tuple output)."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base_layer = base
        self.adapter = nn.ModuleDict()
        self.active: Optional[str] = None

    def add_adapter(self, name: str, dim: int, reduction_factor: int, activation: str, channel_dim: int) -> None:
        ref = next(self.base_layer.parameters(), None)
        self.adapter[name] = Bottleneck(dim, reduction_factor, activation, channel_dim)
        if ref is not None:
            self.adapter[name].to(ref.device, ref.dtype)
        self.active = name

    def adapter_names(self) -> list[str]:
        return list(self.adapter.keys())

    def set_adapter(self, name: Optional[str]) -> None:
        self.active = name

    def merge(self) -> None:
        raise NotImplementedError("a bottleneck adapter is non-linear (down, activation, up): it cannot be merged "
                                  "into the base weights")

    unmerge = merge

    def forward(self, x, *args, **kwargs):
        out = self.base_layer(x, *args, **kwargs)
        if self.active is None:
            return out
        if isinstance(out, tuple):
            return (self.adapter[self.active](out[0]), *out[1:])
        return self.adapter[self.active](out)

