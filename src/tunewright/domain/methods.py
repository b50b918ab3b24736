"""The domain-adaptation methods as declared objects: each gives its alignment loss between source
features f_s (B, H) and target features f_t (B_t, H); `callbacks.DomainAlignment` adds
weight * loss to `fit()`'s loss and never asks a method's name.

Declarations: `name` (the `domain.method` value; `METHODS` is built from them) and `aligns`
(False: no target batch is drawn and nothing is added). A method may keep state (DANN's
discriminator) and have `on_before_optimizer_step()`, which the callback forwards.
The losses are the pure functions of `core.py`.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Optional, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .core import coral_loss, dann_lambda, grad_reverse, mmd


@dataclass
class DomainSettings:
    """What a method may need when it is built."""
    feature_dim: Optional[int] = None      # H, DANN's discriminator input
    gamma: float = 10.0                    # DANN's lambda_p schedule
    disc_hidden: int = 256
    disc_lr: float = 1e-3


class DomainMethod(Protocol):
    name: str
    aligns: bool

    def loss(self, fs: torch.Tensor, ft: torch.Tensor, progress: float) -> torch.Tensor: ...


class SourceOnly:
    """Train on the labeled source alone: the baseline, no alignment term."""
    name, aligns = "source_only", False

    @classmethod
    def build(cls, s: DomainSettings):
        return cls()

    def loss(self, fs, ft, progress):
        return fs.new_zeros(())


class CORAL:
    """Deep CORAL (Sun & Saenko 2016): ||cov(f_s) - cov(f_t)||_F^2 / (4 d^2)."""
    name, aligns = "coral", True

    @classmethod
    def build(cls, s: DomainSettings):
        return cls()

    def loss(self, fs, ft, progress):
        return coral_loss(fs, ft)


class MMD:
    """Multi-kernel MMD^2 between source and target features (Long et al. 2015, DAN)."""
    name, aligns = "mmd", True

    @classmethod
    def build(cls, s: DomainSettings):
        return cls()

    def loss(self, fs, ft, progress):
        return mmd(fs, ft)


class DANN:
    """Domain-adversarial training (Ganin et al. 2016, JMLR):

        BCE(D(R(f_s)), 0) + BCE(D(R(f_t)), 1),   R = grad_reverse with lambda_p = 2 / (1 + exp(-gamma p)) - 1

    D, a one-hidden-layer domain classifier with its own Adam, belongs to the method and is stepped
    together with the model's optimizer (`on_before_optimizer_step`)."""
    name, aligns = "dann", True

    def __init__(self, feature_dim: int, hidden: int = 256, lr: float = 1e-3, gamma: float = 10.0):
        self.gamma = gamma
        self.disc = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=lr)

    @classmethod
    def build(cls, s: DomainSettings):
        return cls(s.feature_dim, s.disc_hidden, s.disc_lr, s.gamma)

    def loss(self, fs, ft, progress):
        f = grad_reverse(torch.cat([fs, ft]), dann_lambda(progress, self.gamma))    # (B + B_t, H)
        d = torch.cat([torch.zeros(len(fs)), torch.ones(len(ft))]).to(f.device)    # 0 source, 1 target
        return F.binary_cross_entropy_with_logits(self.disc(f).squeeze(-1), d)

    def on_before_optimizer_step(self) -> None:
        self.disc_opt.step()
        self.disc_opt.zero_grad(set_to_none=True)


METHODS: dict[str, type] = {m.name: m for m in (SourceOnly, DANN, CORAL, MMD)}


def method_class(name: str) -> type:
    """The class declared under `name`; a ConfigError names the key, the value and the choices."""
    if name not in METHODS:
        close = difflib.get_close_matches(name, list(METHODS), n=1)
        raise ConfigError(f"domain.method: {name!r} is not known; choose one of {', '.join(METHODS)}."
                          + (f" Did you mean {close[0]!r}?" if close else ""))
    return METHODS[name]


def check_domain(cfg) -> None:
    """The check of `domain.method` that `adapt_domain` makes before any data is read (config sits below
    this registry, so it cannot make it itself)."""
    method_class(cfg.domain.method)
