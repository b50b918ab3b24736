"""Pure functions of domain adaptation. The reported shift score is the advisor's
(`tunewright.domain_shift.mmd2`, numpy); `mmd` here is the differentiable torch loss used in training.

- Gradient reversal (Ganin et al. 2016, "Domain-Adversarial Training of Neural Networks", JMLR):
  forward R(x) = x, backward dR/dx = -lambda * I. With a domain classifier on R(features), the
  encoder *maximises* the domain loss the classifier minimises.
- Deep CORAL (Sun & Saenko 2016): L = ||C_s - C_t||_F^2 / (4 d^2), C the (d, d) feature covariances.
- MMD (Gretton et al. 2012; as a loss: Long et al. 2015, DAN): biased estimate of
  MMD^2 = E k(s, s') + E k(t, t') - 2 E k(s, t) with a sum of Gaussian kernels.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam: float):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the incoming gradient by -lam backward."""
    return _GradReverse.apply(x, float(lam))


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """Ganin et al.'s schedule lambda_p = 2 / (1 + exp(-gamma p)) - 1, p in [0, 1] the training progress."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def covariance(x: torch.Tensor) -> torch.Tensor:
    """(n, d) -> (d, d) unbiased covariance."""
    xc = x - x.mean(0, keepdim=True)
    return xc.T @ xc / max(x.shape[0] - 1, 1)


def coral_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Deep CORAL: ||cov(fs) - cov(ft)||_F^2 / (4 d^2); fs (ns, d), ft (nt, d)."""
    d = fs.shape[1]
    return ((covariance(fs) - covariance(ft)) ** 2).sum() / (4.0 * d * d)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T).clamp_min(0)


def mmd(x: torch.Tensor, y: torch.Tensor, scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
        bandwidth: float | None = None) -> torch.Tensor:
    """Biased MMD^2 between samples x (n, d) and y (m, d) with k = sum_s exp(-||a-b||^2 / (2 s^2 h)).

    h is the median squared distance of the pooled sample (the median heuristic), held constant
    (no gradient) unless `bandwidth` gives it."""
    xx, yy, xy = _sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y)
    if bandwidth is None:
        pooled = torch.cat([xx.flatten(), yy.flatten(), xy.flatten()]).detach()
        bandwidth = float(pooled[pooled > 0].median()) if (pooled > 0).any() else 1.0
    k = lambda d2: sum(torch.exp(-d2 / (2 * s * s * bandwidth)) for s in scales)  # noqa: E731
    return k(xx).mean() + k(yy).mean() - 2 * k(xy).mean()


@torch.no_grad()
def domain_shift(fs: torch.Tensor, ft: torch.Tensor, n: int = 500, seed: int = 0) -> float:
    """The domain-shift score `tunewright advise` reports (`tunewright.domain_shift.mmd2`: unbiased MMD^2,
    median-distance bandwidth) between up to n source and n target feature vectors. Shared so the
    advisor's score and the before/after score of adaptation are one number."""
    from ..domain_shift import mmd2

    g = torch.Generator().manual_seed(seed)
    fs = fs[torch.randperm(len(fs), generator=g)[:n]]
    ft = ft[torch.randperm(len(ft), generator=g)[:n]]
    return mmd2(fs.double().numpy(), ft.double().numpy())
