"""How far each layer group moved: ||W_after - W_before||_F / ||W_before||_F.

Computed over the group's pretrained tensors (the head is new, so it has no "before" and is
skipped). For a PEFT run the "after" weights are the merged ones (base + update), so LoRA's
low-rank update and full fine-tuning land on the same scale.
"""
from __future__ import annotations

import torch


def relative_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor],
                    groups: dict[str, list[str]]) -> dict[str, float]:
    """{group: ||ΔW|| / ||W||} over the names of each group present in both state dicts."""
    out = {}
    for g, names in groups.items():
        num = den = 0.0
        for n in names:
            if n in before and n in after and before[n].shape == after[n].shape:
                w0 = before[n].double()
                num += float((after[n].double() - w0).pow(2).sum())
                den += float(w0.pow(2).sum())
        if den > 0:
            out[g] = (num ** 0.5) / (den ** 0.5)
    return out
