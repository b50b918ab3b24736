"""Small models for the CPU examples, loadable as `model.name: tunewright.zoo:small_cnn`.

EfficientNet-Lite0 costs ~0.4 GFLOP per 224x224 image; on a 2-core CPU the continual, meta and
domain examples (tens of thousands of 28x28 images, many runs each) use this CNN instead.
No BatchNorm: MAML's functional inner loop and domain alignment both want per-example features
that do not depend on batch statistics.
"""
from __future__ import annotations

import torch
from torch import nn


def small_cnn(in_channels: int = 1, width: int = 16, image_size: int = 28, feature_dim: int = 128) -> nn.Module:
    """LeNet-like: 2 x (conv 3x3 -> ReLU -> max-pool 2) -> Linear -> ReLU: (B, C, S, S) -> (B, feature_dim)."""
    s = image_size // 4
    net = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (B, w, S/2, S/2)
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),     # (B, 2w, S/4, S/4)
        nn.Flatten(), nn.Linear(2 * width * s * s, feature_dim), nn.ReLU(),        # (B, feature_dim)
    )
    net.feature_dim = feature_dim
    net.input_shape = (in_channels, image_size, image_size)
    return net


def mlp_trunk(in_features: int = 384, hidden: int = 256, dropout: float = 0.1) -> nn.Module:
    """A trainable trunk over frozen features: Linear -> GELU -> dropout, (B, in) -> (B, hidden)."""
    net = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Dropout(dropout))
    net.feature_dim = hidden
    return net


class ResidualTrunk(nn.Module):
    """x + up(GELU(down(x))) with `up` zero at init: (B, in) -> (B, in). At init the frozen pretrained
    features pass through unchanged, so meta-learning starts from what they already know (a linear
    probe / nearest class mean over them) instead of from a random projection of them."""

    def __init__(self, in_features: int = 384, hidden: int = 256):
        super().__init__()
        self.down, self.up = nn.Linear(in_features, hidden), nn.Linear(hidden, in_features)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.feature_dim = in_features

    def forward(self, x):
        return x + self.up(nn.functional.gelu(self.down(x)))


def residual_trunk(in_features: int = 384, hidden: int = 256) -> nn.Module:
    return ResidualTrunk(in_features, hidden)


class ScaleTrunk(nn.Module):
    """x * w + b per feature, w = 1 and b = 0 at init: (B, in) -> (B, in). The least a trunk can learn
    over frozen features (2 x in parameters): a reweighting of what they already hold."""

    def __init__(self, in_features: int = 384):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(in_features)), nn.Parameter(torch.zeros(in_features))
        self.feature_dim = in_features

    def forward(self, x):
        return x * self.weight + self.bias


def scale_trunk(in_features: int = 384) -> nn.Module:
    return ScaleTrunk(in_features)
