"""Singular values and effective rank of learned low-rank updates (LoRA, AdaLoRA).

For each adapted layer the update is ΔW = s · B A (LoRA, Hu et al. 2021), or P diag(E) Q (AdaLoRA,
Zhang et al. 2023). Its singular values show how many of the r directions are used. The
effective rank is Roy & Vetterli's (2007): exp(H(p)), p_i = σ_i / Σσ, between 1 and r.
"""
from __future__ import annotations

import re

import numpy as np
import torch


def effective_rank(sigma) -> float:
    s = np.asarray(sigma, dtype=np.float64)
    s = s[s > 0]
    if s.size == 0:
        return 0.0
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def lora_updates(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{layer name: ΔW (out, in)} for every module holding peft-style `lora_A`/`lora_B` (or AdaLoRA's E)."""
    out = {}
    for name, mod in model.named_modules():
        A, B = getattr(mod, "lora_A", None), getattr(mod, "lora_B", None)
        if not isinstance(A, torch.nn.ModuleDict) and not isinstance(A, torch.nn.ParameterDict):
            continue
        for key in list(A.keys()):
            a = A[key].weight if hasattr(A[key], "weight") else A[key]        # (r, in)
            b = B[key].weight if hasattr(B[key], "weight") else B[key]        # (out, r)
            scale = float(getattr(mod, "scaling", {}).get(key, 1.0)) if isinstance(getattr(mod, "scaling", None), dict) else 1.0
            E = getattr(mod, "lora_E", None)
            if E is not None and key in E:                                   # AdaLoRA: P diag(E) Q
                a = a * E[key]
            delta = (b.detach().float() @ a.detach().float()) * scale
            out[re.sub(r"\.base_model\.model", "", name)] = delta
    return out


def spectrum(updates: dict[str, torch.Tensor]) -> dict[str, dict]:
    """{layer: {"sigma": [...], "effective_rank": float}} (σ sorted descending)."""
    res = {}
    for name, d in updates.items():
        s = torch.linalg.svdvals(d).numpy()
        r = min(d.shape)
        s = s[: max(1, min(r, 64))]
        res[name] = {"sigma": [float(v) for v in s], "effective_rank": effective_rank(s)}
    return res
