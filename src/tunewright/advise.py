"""`tunewright advise --model M --data D [--budget-minutes T]`: which strategy or method to try first.

It measures instead of guessing:
1. examples per class in the training data;
2. how well a linear probe on the *pretrained* features already does (cross-validated), the
   cheapest transfer there is;
3. a domain-shift score between the target's pretrained features and a reference set (MMD and a
   classifier two-sample test, `domain_shift.py`);
4. the compute budget: one measured full fine-tuning step and one frozen forward pass, scaled to
   an epoch.

The rules (in `recommend`, a pure function, so they can be tested and argued with):
- fewer than ~20 examples per class: a full model overfits; train the head on frozen features
  (feature_extraction), or lp_ft when the budget allows;
- a probe already near the ceiling on a small shift: fine-tuning buys little; feature_extraction;
- otherwise, when the budget holds at least 2 epochs of full fine-tuning and the shift is
  large, full fine-tuning (the features themselves must move);
- otherwise LoRA: most of full fine-tuning's gain at a fraction of the trainable parameters,
  and a step ~25% cheaper (no weight gradients for the frozen base);
- a budget below one LoRA epoch: feature_extraction.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

DEFAULT_REFERENCE = {"text": ("20newsgroups", "reuters-r8"), "image": ("digits", "mnist")}


def reference_for(modality: str, target: str, reference: str | None = None) -> str:
    """The reference set for the shift score: `reference` if given, else the modality's default,
    else (when the target IS the default: a set compared with itself scores 0) the next one."""
    if reference:
        return reference
    return next(r for r in DEFAULT_REFERENCE.get(modality, DEFAULT_REFERENCE["text"]) if r != target)


@dataclass
class Evidence:
    examples_per_class_min: int
    examples_per_class_median: float
    num_classes: int
    train_size: int
    probe_accuracy: float          # cross-validated linear probe on pretrained features
    shift_mmd2: float
    shift_c2st: float              # 0: indistinguishable from the reference, 1: separable
    step_seconds_full: float       # one full fine-tuning step at the config's batch size
    step_seconds_frozen: float     # one forward pass, no gradients (feature extraction)
    budget_minutes: float | None


@dataclass
class Advice:
    recommendation: str
    reasons: list[str]
    alternatives: list[str]
    estimates_minutes: dict[str, float]
    evidence: Evidence
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def recommend(e: Evidence, epochs: int = 3,
              batch_size: int = 32) -> tuple[str, list[str], list[str], dict[str, float]]:
    steps = -(-e.train_size // batch_size)             # the step times were measured at this batch size
    est = {"full": epochs * steps * e.step_seconds_full / 60,
           "lora": epochs * steps * 0.75 * e.step_seconds_full / 60,
           "feature_extraction": steps * e.step_seconds_frozen / 60}
    budget = e.budget_minutes if e.budget_minutes is not None else float("inf")
    reasons = [f"{e.examples_per_class_min} examples in the smallest class (median {e.examples_per_class_median:g}), "
               f"{e.num_classes} classes",
               f"a linear probe on the pretrained features reaches {e.probe_accuracy:.3f} (cross-validated)",
               f"domain shift from the reference: c2st {e.shift_c2st:.2f} (0 same, 1 separable), MMD² {e.shift_mmd2:.3f}",
               f"measured: {e.step_seconds_full:.2f} s per full step, {e.step_seconds_frozen:.2f} s per frozen forward; "
               f"{epochs} epochs of full ≈ {est['full']:.1f} min, of LoRA ≈ {est['lora']:.1f} min"]
    if e.examples_per_class_median < 20:
        rec = "lp_ft" if est["full"] <= budget else "feature_extraction"
        reasons.append("few examples per class: a fully trained model would overfit; keep the pretrained features")
        return rec, reasons, ["feature_extraction", "bitfit"], est
    if e.probe_accuracy >= 0.95 and e.shift_c2st < 0.5:
        reasons.append("the pretrained features already separate the classes and the data is close to the "
                       "reference domain: fine-tuning has little to add")
        return "feature_extraction", reasons, ["bitfit", "lora"], est
    if est["lora"] > budget:
        reasons.append(f"the budget ({budget:g} min) is below {epochs} LoRA epochs; a head on cached features fits")
        return "feature_extraction", reasons, ["bitfit"], est
    if est["full"] <= budget and (e.shift_c2st >= 0.8 or e.probe_accuracy < 0.8):
        reasons.append("a large shift or a weak probe means the features must move, and the budget allows "
                       "full fine-tuning")
        return "full", reasons, ["lora", "lp_ft"], est
    reasons.append("enough data to adapt the features; LoRA gets most of full fine-tuning's gain for a "
                   "fraction of the trainable parameters" + ("" if est["full"] <= budget else
                                                            " and fits the budget where full does not"))
    return "lora", reasons, ["full", "bitfit", "feature_extraction"], est


def _features(model, bundle, idx, bs: int = 32) -> np.ndarray:
    from .data.collate import to_device
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), bs):
            b = to_device(bundle.collate([bundle.train[i] for i in idx[s:s + bs]]), torch.device("cpu"))
            out.append(model.features(b).float())
    return torch.cat(out).numpy()


def _step_seconds(model, bundle, bs: int) -> tuple[float, float]:
    """(s per full training step, s per frozen forward) at batch `bs`, each the best of 2 timed runs."""
    batch = bundle.collate([bundle.train[i % len(bundle.train)] for i in range(bs)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    full, frozen = [], []
    for _ in range(3):
        model.train()
        t0 = time.perf_counter()
        logits = model(batch)
        torch.nn.functional.cross_entropy(logits, batch["labels"]).backward()
        opt.step()
        opt.zero_grad()
        full.append(time.perf_counter() - t0)
        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            model.features(batch)
        frozen.append(time.perf_counter() - t0)
    return min(full[1:]), min(frozen[1:])       # the first is warm-up


def advise(cfg, budget_minutes: float | None = None, reference: str | None = None,
           max_examples: int = 256) -> Advice:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from .analysis.analyze import pretrained_model
    from .config import to_dict
    from .config.load import config_from_dict
    from .data import build_data, read_data
    from .domain_shift import c2st, mmd2
    from .models import load_model

    raw = read_data(cfg)
    model, preprocessor = load_model(cfg, len(raw.label_names))
    bundle = build_data(raw, preprocessor, cfg)
    counts = np.asarray(bundle.class_counts)
    rng = np.random.default_rng(cfg.train.seed)
    idx = sorted(rng.choice(len(bundle.train), size=min(len(bundle.train), max_examples), replace=False).tolist())
    x = _features(model.eval(), bundle, idx)
    y = np.array([bundle.targets["train"][i] for i in idx])
    folds = int(max(2, min(5, np.bincount(y).min())))
    probe = float(cross_val_score(LogisticRegression(max_iter=1000), (x - x.mean(0)) / (x.std(0) + 1e-6), y,
                                  cv=folds).mean()) if np.bincount(y).min() >= 2 else float("nan")
    ref_name = reference_for(bundle.modality, cfg.data.train, reference)
    ref = to_dict(cfg)
    ref["data"] = {"train": ref_name, "train_subset": max_examples * 2, "test_subset": 16,
                   "max_length": cfg.data.max_length}       # only the train rows are used
    ref_cfg = config_from_dict(ref)
    ref_raw = read_data(ref_cfg)
    ref_bundle = build_data(ref_raw, preprocessor, ref_cfg)
    ridx = sorted(rng.choice(len(ref_bundle.train), size=min(len(ref_bundle.train), max_examples),
                             replace=False).tolist())
    xr = _features(model, ref_bundle, ridx)
    full_s, frozen_s = _step_seconds(pretrained_model(cfg, len(raw.label_names)), bundle, cfg.train.batch_size)
    ev = Evidence(int(counts.min()), float(np.median(counts)), len(counts), len(bundle.train), probe,
                  mmd2(x, xr), c2st(x, xr, cfg.train.seed), full_s, frozen_s, budget_minutes)
    rec, reasons, alts, est = recommend(ev, cfg.train.epochs, cfg.train.batch_size)
    return Advice(rec, reasons, alts, {k: round(v, 2) for k, v in est.items()}, ev,
                  [f"reference set for the shift score: {ref_name}"])
