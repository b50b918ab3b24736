"""`tunewright analyze RUN_DIR`: compare the fine-tuned model with the pretrained one it came from.

The pretrained model is rebuilt from the run's config (`load_model`, seeded as in training; the
packaged models load offline); the fine-tuned one from `model/` (`load_run`). PEFT updates are
merged first, so every method is compared on the same footing: plain weights, same names. Writes
`RUN_DIR/analysis.json`; `tunewright report` draws it.

    cka[layer]                 linear CKA of each block's pooled output, before vs after
    contribution[group]        metric drop when that group reverts to its pretrained weights
    weight_change[group]       ||ΔW|| / ||W||
    lora[layer]                singular values and effective rank of the update (LoRA, AdaLoRA)
    pca                        features before/after projected to 2-D, with labels
    robustness[kind][sev]      metric under input corruptions (severity 0: clean)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .cka import linear_cka
from .features import layer_features, pca_2d
from .lora_spectrum import lora_updates, spectrum
from .robustness import IMAGE_CORRUPTIONS, SEVERITIES, TEXT_CORRUPTIONS, corrupt_image, corrupt_texts
from .weight_delta import relative_change


def _batches(ds, collate, idx, bs=32):
    return [collate([ds[i] for i in idx[s:s + bs]]) for s in range(0, len(idx), bs)]


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(-1) == labels).mean())


@torch.no_grad()
def _logits(model, batches) -> np.ndarray:
    model.eval()
    return torch.cat([model(b).float() for b in batches]).numpy()


def pretrained_model(cfg, num_labels):
    from ..models import load_model
    from ..training.rng import seed_everything
    seed_everything(cfg.train.seed)
    model, _ = load_model(cfg, num_labels)
    return model.eval()


def layer_contribution(tuned, base, groups: dict[str, list[str]], batches, labels) -> dict[str, float]:
    """{group: accuracy(tuned) - accuracy(tuned with that group reverted to pretrained)}."""
    full = _accuracy(_logits(tuned, batches), labels)
    params = dict(tuned.named_parameters())
    base_sd = base.state_dict()
    out = {}
    for g, names in groups.items():
        names = [n for n in names if n in params and n in base_sd and params[n].shape == base_sd[n].shape]
        if not names:
            continue
        saved = {n: params[n].detach().clone() for n in names}
        for n in names:
            params[n].data.copy_(base_sd[n])
        out[g] = full - _accuracy(_logits(tuned, batches), labels)
        for n in names:
            params[n].data.copy_(saved[n])
    return out


def robustness(tuned, bundle, cfg, preprocessor, idx, labels) -> dict:
    """{corruption: [metric at severity 0, 1, 2, 3]} (accuracy)."""
    ds = bundle.test
    clean = _accuracy(_logits(tuned, _batches(ds, bundle.collate, idx)), labels)
    out = {}
    if bundle.modality == "text":
        from ..data.build import encode_inputs
        texts = [bundle.raw_inputs["test"][i] for i in idx]
        for kind in TEXT_CORRUPTIONS:
            accs = [clean]
            for sev in SEVERITIES:
                items = encode_inputs(preprocessor, corrupt_texts(texts, kind, sev, cfg.train.seed), cfg)
                for it, y in zip(items, labels):
                    it["labels"] = int(y)
                accs.append(_accuracy(_logits(tuned, _batches(items, bundle.collate, list(range(len(items))))), labels))
            out[kind] = accs
    elif bundle.modality == "image":
        base_batches = _batches(ds, bundle.collate, idx)
        for kind in IMAGE_CORRUPTIONS:
            accs = [clean]
            for sev in SEVERITIES:
                bs = []
                for b in base_batches:
                    x = b["pixel_values"].numpy()                       # (B, 3, S, S), normalised
                    lo, hi = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
                    u = (x - lo) / np.maximum(hi - lo, 1e-8)            # back to [0, 1] per image
                    u = np.stack([corrupt_image(im.transpose(1, 2, 0), kind, sev, cfg.train.seed).transpose(2, 0, 1)
                                  for im in u])
                    bs.append({**b, "pixel_values": torch.tensor(u * (hi - lo) + lo, dtype=torch.float32)})
                accs.append(_accuracy(_logits(tuned, bs), labels))
            out[kind] = accs
    return out


def analyze_run(run_dir, max_examples: int = 256, robust: bool = True) -> dict:
    from ..data import build_data, read_data
    from ..models import layer_groups
    from ..peft import merged_model, method_spec
    from ..run import load_run

    run_dir = Path(run_dir)
    cfg, tuned, preprocessor, meta = load_run(run_dir)
    if cfg.task not in ("classification", "image_classification"):
        raise NotImplementedError(f"analyze supports classification tasks, not {cfg.task!r}")
    bundle = build_data(read_data(cfg), preprocessor, cfg)
    num_labels = bundle.num_labels
    rng = np.random.default_rng(cfg.train.seed)
    n = len(bundle.test)
    idx = sorted(rng.choice(n, size=min(n, max_examples), replace=False).tolist())
    labels = np.array([bundle.targets["test"][i] for i in idx])
    batches = _batches(bundle.test, bundle.collate, idx)
    result: dict = {"run_dir": str(run_dir), "method": cfg.method, "strategy": cfg.strategy,
                    "examples": len(idx), "notes": []}

    if method_spec(cfg.method).low_rank:
        spec = spectrum(lora_updates(tuned))
        result["lora"] = spec
    if method_spec(cfg.method).freezes_base:
        try:
            tuned = merged_model(tuned)
        except Exception as e:  # prompt/prefix tuning add tokens, not weights: nothing to merge
            result["notes"].append(f"not merged ({type(e).__name__}: {e}); weight-level analyses skipped")
    base = pretrained_model(cfg, num_labels)
    try:  # the 'before' model borrows the trained head (only its features are compared)
        base.head.load_state_dict(tuned.head.state_dict())
    except RuntimeError as e:
        result["notes"].append(f"head not copied to the pretrained model ({e.__class__.__name__})")

    names, after, f_after, logits_after = layer_features(tuned, batches)
    names_b, before, f_before, _ = layer_features(base, batches)
    result["cka"] = {n: linear_cka(b, a) for n, b, a in zip(names, before, after)} if names == names_b else {}
    result["cka"]["features"] = linear_cka(f_before, f_after)
    result["accuracy"] = _accuracy(logits_after, labels)
    result["pca"] = {"before": pca_2d(f_before).round(4).tolist(), "after": pca_2d(f_after).round(4).tolist(),
                     "labels": labels.tolist(), "label_names": bundle.label_names}

    same_names = set(dict(tuned.named_parameters())) == set(dict(base.named_parameters()))
    if same_names:
        groups = {g.name: g.param_names for g in layer_groups(base) if g.name != "head"}
        result["weight_change"] = relative_change(base.state_dict(), tuned.state_dict(), groups)
        result["contribution"] = layer_contribution(tuned, base, groups, batches, labels)
    if robust:
        result["robustness"] = robustness(tuned, bundle, cfg, preprocessor, idx, labels)
    (run_dir / "analysis.json").write_text(json.dumps(result))
    return result
