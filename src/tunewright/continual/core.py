"""Pure functions of continual learning.

- EWC (Kirkpatrick et al. 2017, PNAS): penalty(w) = sum_i F_i (w_i - w*_i)^2 (the caller scales it by
  lambda/2), F the diagonal (empirical) Fisher at the anchor w* of the previous task(s).
  Online EWC (Schwarz et al. 2018, "Progress & Compress"): one anchor, F <- gamma F + F_new.
- Reservoir sampling (Vitter 1985, Algorithm R): after n items each one is in the buffer with
  probability capacity / n.
- LwF (Li & Hoiem 2016): T^2 * KL(softmax(z_old / T) || softmax(z / T)) on the old tasks' outputs.
- Metrics (Lopez-Paz & Ranzato 2017, GEM): R[i][j] = accuracy on task j after training task i;
  ACC = mean_j R[T-1][j]; BWT = mean_{j<T-1} (R[T-1][j] - R[j][j]) (negative: forgetting);
  FWT = mean_{j>0} (R[j-1][j] - b_j), b_j the accuracy of the initial model on task j.
"""
from __future__ import annotations

import random
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F


def ewc_penalty(params: dict, anchor: dict, fisher: dict) -> torch.Tensor:
    """sum over names and elements of F * (p - p*)^2; names missing from `fisher` do not count."""
    total = None
    for name, f in fisher.items():
        term = (f * (params[name] - anchor[name]) ** 2).sum()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros(())


def per_example_grads(model: torch.nn.Module, batch: dict, loss_fn: Callable) -> dict:
    """{name: (B, *param.shape)}: the gradient of each example's own loss, for the parameters that train.

    torch.func: `grad` of the loss of one example (its tensors given a batch axis of 1) through
    `functional_call`, vectorised over the batch by `vmap`. The model's forward must be vmap-able
    (no data-dependent Python control flow); a model whose `vmap_safe` is False gets a loop over the
    examples instead."""
    from torch.func import functional_call, grad, vmap

    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def loss_of_one(trained: dict, example: dict) -> torch.Tensor:
        one = {k: v.unsqueeze(0) for k, v in example.items()}                  # each (1, ...)
        return loss_fn(functional_call(model, (trained, frozen, buffers), (one,)), one)

    if getattr(model, "vmap_safe", True):
        return vmap(grad(loss_of_one), in_dims=(None, 0))(params, batch)
    # A forward that branches on its data (Hugging Face text models look at the attention mask to pick
    # an attention kernel) cannot run under vmap: the same per-example gradients, one example at a time.
    n = len(next(iter(batch.values())))
    rows = [grad(loss_of_one)(params, {k: v[i] for k, v in batch.items()}) for i in range(n)]
    return {name: torch.stack([r[name] for r in rows]) for name in params}


def diagonal_fisher(model: torch.nn.Module, batches: Iterable[dict], loss_fn: Callable) -> dict:
    """Empirical diagonal Fisher F_i = (1/N) sum_n (d loss_n / d w_i)^2 over the N examples of `batches`
    (Kirkpatrick et al. 2017), for the parameters that train; computed in eval mode.

    Per example, not per batch: the square of a batch-mean gradient, (mean_n g_n)^2, is smaller than
    mean_n g_n^2 (by the variance of g_n across the batch) and underestimates F."""
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    count = 0
    was = model.training
    model.eval()
    for batch in batches:
        for n, g in per_example_grads(model, batch, loss_fn).items():           # g: (B, *shape)
            fisher[n] += (g ** 2).sum(0)
        count += len(next(iter(batch.values())))
    model.train(was)
    return {n: f / max(count, 1) for n, f in fisher.items()}


def online_fisher(old: dict, new: dict, gamma: float) -> dict:
    """Online EWC's running Fisher (Schwarz et al. 2018): F <- gamma * F_old + F_new."""
    return {n: gamma * old[n] + f for n, f in new.items()}


class Reservoir:
    """A fixed-size uniform sample of a stream (Algorithm R), seeded; its state is saved in checkpoints."""

    def __init__(self, capacity: int, seed: int = 0):
        self.capacity, self.seen, self.items = capacity, 0, []
        self.rng = random.Random(seed)

    def add(self, item) -> None:
        self.seen += 1
        if len(self.items) < self.capacity:
            self.items.append(item)
        else:
            j = self.rng.randrange(self.seen)              # uniform in [0, seen)
            if j < self.capacity:
                self.items[j] = item

    def sample(self, k: int) -> list:
        return self.rng.sample(self.items, min(k, len(self.items)))

    def __len__(self) -> int:
        return len(self.items)

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "seen": self.seen, "items": self.items, "rng": self.rng.getstate()}

    def load_state_dict(self, d: dict) -> None:
        self.capacity, self.seen, self.items = d["capacity"], d["seen"], list(d["items"])
        self.rng.setstate(d["rng"])


def lwf_loss(logits: torch.Tensor, old_logits: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """T^2 * KL(softmax(old / T) || softmax(new / T)), averaged over the batch; both (B, C_old)."""
    t = temperature
    return F.kl_div(F.log_softmax(logits / t, -1), F.softmax(old_logits / t, -1), reduction="batchmean") * t * t


def average_accuracy(R) -> float:
    R = np.asarray(R, float)
    return float(R[-1].mean())


def backward_transfer(R) -> float:
    R = np.asarray(R, float)
    T = len(R)
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)])) if T > 1 else 0.0


def forward_transfer(R, baseline) -> float:
    R, b = np.asarray(R, float), np.asarray(baseline, float)
    T = len(R)
    return float(np.mean([R[j - 1, j] - b[j] for j in range(1, T)])) if T > 1 else 0.0
