"""Task metrics from collected predictions. Names are part of the public summary.json contract:
classification `accuracy`, `macro_f1`, `loss`; regression `mse`, `mae`, `r2`; causal LM `loss`, `perplexity`.
"""
from __future__ import annotations

import math

import numpy as np


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_labels: int) -> dict:
    """logits (N, C), labels (N,) -> accuracy, macro-F1 over all classes, mean cross-entropy."""
    pred = logits.argmax(-1)
    acc = float((pred == labels).mean()) if len(labels) else float("nan")
    f1s = []
    for c in range(num_labels):
        tp = np.sum((pred == c) & (labels == c))
        fp = np.sum((pred == c) & (labels != c))
        fn = np.sum((pred != c) & (labels == c))
        if tp + fp + fn == 0:
            continue  # class absent from both: sklearn's zero_division handling would skew the mean
        f1s.append(2 * tp / (2 * tp + fp + fn))
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    loss = float(-logp[np.arange(len(labels)), labels].mean()) if len(labels) else float("nan")
    return {"accuracy": acc, "macro_f1": float(np.mean(f1s)) if f1s else 0.0, "loss": loss}


def multilabel_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """logits (N, C), multi-hot labels (N, C): exact-match accuracy, macro-F1 at threshold 0, BCE loss."""
    pred = logits > 0
    y = labels > 0.5
    acc = float((pred == y).all(-1).mean())
    tp = (pred & y).sum(0)
    fp = (pred & ~y).sum(0)
    fn = (~pred & y).sum(0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
    bce = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    return {"accuracy": acc, "macro_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else 0.0,
            "loss": float(bce.mean())}


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    pred, target = pred.reshape(-1), target.reshape(-1)
    err = pred - target
    ss_tot = float(((target - target.mean()) ** 2).sum())
    return {"mse": float((err ** 2).mean()), "mae": float(np.abs(err).mean()),
            "r2": 1 - float((err ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0, "loss": float((err ** 2).mean())}


def lm_metrics(total_nll: float, total_tokens: int) -> dict:
    loss = total_nll / max(total_tokens, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": int(total_tokens)}
