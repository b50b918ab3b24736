"""Pure functions of meta-learning: N-way K-shot episodes, and the MAML inner/outer loop in torch.func.

MAML (Finn et al. 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks"):
    inner:  theta'_e = theta - alpha * grad_theta L(f_theta(x^s_e), y^s_e)      (repeated `steps` times)
    outer:  min_theta  mean_e L(f_theta'_e(x^q_e), y^q_e)
The meta-gradient d/dtheta goes through theta'_e, i.e. through the inner gradient (second order).
First-order MAML drops that term: d theta'_e / d theta := I. ANIL (Raghu et al. 2020, "Rapid Learning
or Feature Reuse?") adapts only the head in the inner loop; the outer loop trains everything.
Episodes of a meta-batch run in parallel with `torch.func.vmap`; parameters are passed explicitly
with `torch.func.functional_call`, so the module itself is never modified.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap


def split_classes(classes: Sequence[int], test_classes: Sequence[int]) -> tuple[list[int], list[int]]:
    """(meta-train classes, meta-test classes): disjoint by construction; unknown test classes are an error."""
    test = sorted(set(int(c) for c in test_classes))
    missing = set(test) - set(int(c) for c in classes)
    if missing:
        raise ValueError(f"meta.test_classes: {sorted(missing)} are not classes of the data {sorted(classes)}")
    return [int(c) for c in classes if int(c) not in test], test


def sample_episode(by_class: dict, classes: Sequence[int], n_way: int, k_shot: int, q_queries: int,
                   rng: np.random.Generator):
    """Draw n_way classes from `classes`, then k_shot + q_queries distinct examples of each.

    Returns (support_idx (n*k,), support_y (n*k,), query_idx (n*q,), query_y (n*q,), chosen classes);
    labels are 0..n_way-1 in the order the classes were drawn."""
    chosen = rng.choice(np.asarray(classes), size=n_way, replace=False)
    s_idx, s_y, q_idx, q_y = [], [], [], []
    for label, c in enumerate(chosen):
        pick = rng.choice(by_class[int(c)], size=k_shot + q_queries, replace=False)
        s_idx += list(pick[:k_shot]); s_y += [label] * k_shot
        q_idx += list(pick[k_shot:]); q_y += [label] * q_queries
    return np.array(s_idx), np.array(s_y), np.array(q_idx), np.array(q_y), [int(c) for c in chosen]


class EpisodeSampler:
    """Episodes over one class pool; episode i is a pure function of (seed, i), so a resumed run
    sees the same episodes. A sampler built on the meta-train pool can never draw a meta-test class."""

    def __init__(self, labels, classes: Iterable[int], n_way: int, k_shot: int, q_queries: int, seed: int = 0):
        labels = np.asarray(labels)
        self.classes = [int(c) for c in classes]
        self.by_class = {c: np.flatnonzero(labels == c) for c in self.classes}
        self.n_way, self.k_shot, self.q_queries, self.seed = n_way, k_shot, q_queries, seed
        if len(self.classes) < n_way:
            raise ValueError(f"meta.n_way: {n_way} classes per episode but the pool has {len(self.classes)}")
        short = [c for c, idx in self.by_class.items() if len(idx) < k_shot + q_queries]
        if short:
            raise ValueError(f"classes {short} have fewer than k_shot + q_queries = {k_shot + q_queries} examples")

    def episode(self, index: int):
        rng = np.random.default_rng([self.seed, index])
        return sample_episode(self.by_class, self.classes, self.n_way, self.k_shot, self.q_queries, rng)


def adapt(net: torch.nn.Module, params: dict, xs: torch.Tensor, ys: torch.Tensor, *, inner_lr: float,
          steps: int, first_order: bool = False, adapt_names: Sequence[str] | None = None,
          loss_fn: Callable = F.cross_entropy, buffers: dict | None = None) -> dict:
    """theta' after `steps` SGD steps on the support set; only `adapt_names` move (None: all)."""
    names = list(adapt_names) if adapt_names is not None else list(params)
    buffers = buffers or {}

    def support_loss(sub: dict, fast: dict) -> torch.Tensor:
        return loss_fn(functional_call(net, ({**fast, **sub}, buffers), (xs,)), ys)

    fast = dict(params)
    for _ in range(steps):
        sub = {n: fast[n] for n in names}
        g = grad(support_loss)(sub, fast)
        if first_order:
            g = {n: v.detach() for n, v in g.items()}       # FOMAML: no gradient through the inner gradient
        fast = {**fast, **{n: sub[n] - inner_lr * g[n] for n in names}}
    return fast


def query_loss(net, params, xs, ys, xq, yq, *, loss_fn: Callable = F.cross_entropy, buffers=None, **inner):
    """L(f_theta'(x^q), y^q) for one episode, theta' = adapt(theta, support)."""
    fast = adapt(net, params, xs, ys, loss_fn=loss_fn, buffers=buffers, **inner)
    return loss_fn(functional_call(net, (fast, buffers or {}), (xq,)), yq)


def maml_loss(net: torch.nn.Module, params: dict, xs, ys, xq, yq, **inner) -> torch.Tensor:
    """Per-episode query losses (E,) of a meta-batch: xs (E, n*k, ...), ys (E, n*k), xq (E, n*q, ...), yq (E, n*q).

    Backpropagating their mean into `params` gives the MAML meta-gradient (first order when
    `first_order=True`)."""
    fn = partial(query_loss, net, **inner)
    return vmap(fn, in_dims=(None, 0, 0, 0, 0), randomness="same")(params, xs, ys, xq, yq)


def mean_ci(values: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """(mean, half-width of the normal 95% confidence interval z * sd / sqrt(n))."""
    v = np.asarray(values, float)
    return float(v.mean()), float(z * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
