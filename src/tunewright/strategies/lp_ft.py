"""LP-FT: linear probing, then fine-tuning (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
Features and Underperform Out-of-Distribution").

Fine-tuning with a random head sends large, random gradients into the pretrained layers for the
first steps and distorts the features. LP-FT first fits the head alone, on frozen features,
to convergence; fine-tuning then starts from a head that already fits, so the backbone moves
less. The probe is the convex problem

    min_{W,b}  mean_i loss(W f(x_i) + b, y_i) + wd/2 * ||W||^2

over cached features f(x) (one backbone pass, eval mode), solved by full-batch L-BFGS: seconds,
not epochs. The paper used logistic regression too. `lp_ft` is the strategy "probe, then full
fine-tuning"; `strategy_options.warm_start_head: true` adds the probe to any other strategy or
PEFT method. A causal LM's output layer is pretrained already, so there is nothing to probe.

Under a PEFT method the probe is on by default (`warm_start_head: null`, auto). A PEFT method
trains a few new parameters at about 10x the full fine-tuning rate (docs/peft.md), and with a
random head the first few hundred steps mostly fit the head through a backbone that barely
moves. Probed first, the head fits from step 0, and the adapter's steps go to the features.
Tomihari & Sato (NeurIPS 2024) extend the LP-FT analysis to LoRA and find it effective there;
they also find that the probed head's larger norm can hurt calibration (temperature scaling
fixes it). Measured on MiniLM LoRA, full
Reuters-R8, 2 CPU cores (`benchmarks/bench_peft.py --only curve`): the probe took 81-105 s over
three runs (one forward pass over the training set plus L-BFGS), the probed head alone scored
96.6% on the test set, and half an epoch later LoRA was at 97.4% (88.4% from a random head).
"""
from __future__ import annotations

import time
import torch
from torch import nn

from ..config import eval_batch_size
from ..config.schema import uses_method
from ..training.losses import loss_for


def linear_probe(head: nn.Module, features: torch.Tensor, labels: torch.Tensor, task: str, *,
                 weight_decay: float = 1e-4, max_iter: int = 300) -> dict:
    """Fit `head` (its own parameters, in place) on `features` (N, H) and `labels` by L-BFGS.

    Returns {"loss": final training objective, "iterations": used, "train_accuracy" (classification)}.
    The head runs in eval mode (no dropout): the probe solves the deterministic problem.
    """
    loss_fn = loss_for(task)
    params = [p for p in head.parameters()]
    was_training = head.training
    head.eval()
    target = {"labels": labels}
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)
    evals = []

    def objective() -> torch.Tensor:
        opt.zero_grad()
        logits = head(features)
        logits = logits.squeeze(-1) if task == "regression" else logits
        loss = loss_fn(logits, target) + weight_decay / 2 * sum((p ** 2).sum() for p in params if p.dim() > 1)
        loss.backward()
        evals.append(loss.item())
        return loss

    with torch.enable_grad():
        opt.step(objective)
    for p in params:      # the probe's last gradients would otherwise add into the first training step's
        p.grad = None
    head.train(was_training)
    out = {"loss": evals[-1], "iterations": opt.state[params[0]].get("n_iter", len(evals))}
    if task in ("classification", "image_classification"):
        with torch.no_grad():
            head.eval()
            out["train_accuracy"] = float((head(features).argmax(-1) == labels).float().mean())
            head.train(was_training)
    return out


def wants_warm_start(cfg) -> bool:
    """`strategy_options.warm_start_head` as a decision: True/False as set; None (auto) means on under
    lp_ft and whenever a PEFT method trains a new classification head (see the module docstring)."""
    from . import strategy_spec
    always = strategy_spec(cfg.strategy).warm_start
    flag = cfg.strategy_options.warm_start_head
    if flag is not None:
        return bool(flag) or always
    peft_head = uses_method(cfg) and cfg.peft.train_head and cfg.task in ("classification", "image_classification")
    return always or peft_head


def warm_start_head(data, model: nn.Module, cfg, device: torch.device, notes: list[str]) -> None:
    """Probe `model.head` on the backbone's features of the training set (computed here, once)."""
    from .feature_cache import compute_features

    if model.task == "causal_lm" or not any(True for _ in model.head.parameters()):
        notes.append("head warm start: skipped, the model has no separate head to probe (a causal LM's output "
                     "layer is pretrained; a factory returning logits has no tunewright head)")
        return
    t0 = time.perf_counter()
    bs = eval_batch_size(cfg.train)
    feats, raw_labels = compute_features(model, data.train, data.collate, bs, device, label="head warm start")
    labels = data.collate([{"labels": y} for y in raw_labels])["labels"]
    o = cfg.strategy_options
    stats = linear_probe(model.head, feats.to(device), labels.to(device), model.task,
                         weight_decay=o.probe_weight_decay, max_iter=o.probe_max_iter)
    acc = f", train accuracy {stats['train_accuracy']:.4f}" if "train_accuracy" in stats else ""
    notes.append(f"head warm start (linear probe): L-BFGS on {len(feats)} cached feature vectors, "
                 f"{stats['iterations']} iterations in {time.perf_counter() - t0:.1f} s, objective "
                 f"{stats['loss']:.4f}{acc}")
