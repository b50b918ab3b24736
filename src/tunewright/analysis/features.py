"""Per-layer representations and pooled features of a TaskModel, for CKA and the PCA plot.

Layers are the blocks of the model's block stack (`models.groups.find_block_stack`: BERT's
`encoder.layer`, Llama's `layers`, EfficientNet's `_blocks`), read with forward hooks, so the same
code serves HF, packaged and plain models, wrapped by a PEFT method or not. Each block output is
pooled to one vector per example: token states (B, T, H) by a masked mean, feature maps
(B, C, H, W) by a spatial mean.
"""
from __future__ import annotations

import numpy as np
import torch

from ..models import find_block_stack
from ..data.collate import to_device


def _pool(out, mask):
    h = out[0] if isinstance(out, (tuple, list)) else getattr(out, "last_hidden_state", out)
    if h.dim() == 3 and mask is not None and h.shape[1] == mask.shape[1]:
        m = mask.unsqueeze(-1).to(h.dtype)                      # (B, T, 1)
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)          # (B, H)
    if h.dim() == 3:
        return h.mean(1)
    if h.dim() == 4:
        return h.mean(dim=(-2, -1))                              # (B, C)
    return h.flatten(1)


@torch.no_grad()
def layer_features(model, batches) -> tuple[list[str], list[np.ndarray], np.ndarray, np.ndarray]:
    """(layer names, per-layer (N, H_l) arrays, final features (N, H), logits (N, C)) over `batches`."""
    found = find_block_stack(model.backbone)
    blocks = [] if found is None else [(f"{found[0]}.{i}", b) for i, b in enumerate(found[1])]
    store: dict[str, list] = {n: [] for n, _ in blocks}
    current = {}

    def hook(name):
        return lambda mod, inp, out: store[name].append(_pool(out, current.get("mask")).float().cpu())

    handles = [b.register_forward_hook(hook(n)) for n, b in blocks]
    feats, logits = [], []
    model.eval()
    try:
        for batch in batches:
            batch = to_device(batch, torch.device("cpu"))
            current["mask"] = batch.get("attention_mask")
            f = model.features(batch)
            feats.append(f.float().cpu())
            logits.append(model.head(f).float().cpu())
    finally:
        for h in handles:
            h.remove()
    names = [n for n, _ in blocks]
    return (names, [torch.cat(store[n]).numpy() for n in names], torch.cat(feats).numpy(), torch.cat(logits).numpy())


def pca_2d(x: np.ndarray) -> np.ndarray:
    """(N, H) -> (N, 2): projection on the top two principal components."""
    x = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T
