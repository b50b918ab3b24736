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
from torch import nn
from torch.func import functional_call

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "tanh": nn.Tanh}


class _Weight(nn.Module):
    """A bare ``weight`` parameter, so names read ``lora_A.<name>.weight`` as in peft."""

    def __init__(self, *shape: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(*shape))


class LoraLayer(nn.Module):
    """LoRA (Hu et al. 2021, arXiv:2106.09685) on one linear or convolution layer::

        y = base(x) + s * B(A(dropout(x)))          s = alpha / r  (rsLoRA: alpha / sqrt(r))

    Linear: A (r, in), B (out, r), computed on activations. Convolutions: the update goes through
    the weight, ``y = base_with_weight(W + s * B @ A)(x)`` with A (r, in/groups * k...) and
    B (out, r), via ``torch.func.functional_call`` so the module's own forward (static "same"
    padding, groups, dilation) runs unchanged; dropout is not applied there. Shapes for
    ``groups == 1`` are peft's (A (r, in, kh, kw), B (out, r, 1, 1)), so peft loads those files.
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
            weight = self._dora_weight(name, w)
            return functional_call(self.base_layer, {"weight": weight}, (x, *args), kwargs)
        if self.is_conv:
            return functional_call(self.base_layer, {"weight": w + self.delta(name)}, (x, *args), kwargs)
        out = self.base_layer(x, *args, **kwargs)
        h = self.lora_A[name](self.lora_dropout[name](x))               # (..., r)
        return out + self.lora_B[name](h) * self.scaling[name]          # (..., out)

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

