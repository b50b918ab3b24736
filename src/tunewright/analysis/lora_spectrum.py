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


def _scale(mod, key: str) -> float:
    scaling = getattr(mod, "scaling", None)
    s = float(scaling.get(key, 1.0)) if isinstance(scaling, dict) else 1.0
    ranknum = getattr(mod, "ranknum", None)                  # AdaLoRA: ΔW = s * P diag(E) Q / ranknum
    if isinstance(ranknum, torch.nn.ParameterDict) and key in ranknum:
        s /= float(ranknum[key]) + 1e-5
    return s


def lora_updates(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{layer name: ΔW (out, in * kernel)} for every module holding `lora_A`/`lora_B` (peft's layers and
    tunewright's own `LoraLayer`, linear or convolution), AdaLoRA's `lora_E` included. A convolution's
    update is flattened to (out, in/groups * kh * kw): its rank is the rank of that matrix."""
    out = {}
    for name, mod in model.named_modules():
        A, B = getattr(mod, "lora_A", None), getattr(mod, "lora_B", None)
        if not isinstance(A, (torch.nn.ModuleDict, torch.nn.ParameterDict)):
            continue
        for key in list(A.keys()):
            if hasattr(mod, "delta") and callable(mod.delta) and not hasattr(mod, "lora_E"):
                with torch.no_grad():
                    delta = mod.delta(key).detach().float().flatten(1)        # own LoraLayer: s * B @ A
            else:
                a = (A[key].weight if hasattr(A[key], "weight") else A[key]).detach().float().flatten(1)  # (r, in*)
                b = (B[key].weight if hasattr(B[key], "weight") else B[key]).detach().float().flatten(1)  # (out, r)
                E = getattr(mod, "lora_E", None)
                if E is not None and key in E:                                # AdaLoRA: P diag(E) Q
                    a = a * E[key].detach().float()
                delta = (b @ a) * _scale(mod, key)
            out[re.sub(r"\.base_model\.model", "", name)] = delta
    return out


def spectrum(updates: dict[str, torch.Tensor]) -> dict[str, dict]:
    """{layer: {"sigma": [...], "effective_rank": float}} (σ sorted descending)."""
    res = {}
    for name, d in updates.items():
        s = torch.linalg.svdvals(d).numpy()             # descending; an update of rank r has r nonzero
        s = s[s > s[0] * 1e-6] if s[0] > 0 else s[:1]   # drop float round-off beyond the true rank
        s = s[:64]
        res[name] = {"sigma": [float(v) for v in s], "effective_rank": effective_rank(s)}
    return res
