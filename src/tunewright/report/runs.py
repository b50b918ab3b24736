"""Reading a finished run for the report: metrics rows, a compare folder's leaderboard, predictions on test, failure cases, baselines.

The baselines answer "is fine-tuning worth it here?": the majority class, and a linear probe
(logistic regression) on the *pretrained* model's pooled features, the cheapest transfer there is.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch


def read_rows(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_leaderboard(path: Path) -> list[dict]:
    """leaderboard.csv as written by `tunewright compare`: one dict per variant, numbers as floats (None: empty)."""
    with open(path) as f:
        return [{k: (v if k == "variant" else float(v) if v != "" else None) for k, v in r.items()}
                for r in csv.DictReader(f)]


def series(rows: list[dict], split: str, key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if r.get("split") == split and isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def per_epoch(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """Validation `key` at each evaluation, against the epoch it was taken at."""
    pts = [(r["epoch"], r[key]) for r in rows if r.get("split") == "val" and isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def _features(model, ds, collate, idx, bs: int = 32) -> np.ndarray:
    from ..data.collate import to_device
    out = []
    model.eval()
    with torch.no_grad():
        for s in range(0, len(idx), bs):
            b = to_device(collate([ds[i] for i in idx[s:s + bs]]), torch.device("cpu"))
            out.append(model.features(b).float())
    return torch.cat(out).numpy()


def predictions(run_dir: Path, baselines: bool = True, max_probe_train: int = 1000) -> dict:
    """Test predictions (confusion matrix, failure cases) and, for classification, the baselines."""
    from ..data import build_data, read_data
    from ..evaluate.predict import predict_logits
    from ..run import load_run
    from ..training.precision import resolve_precision

    cfg, model, preprocessor, meta = load_run(run_dir)
    if cfg.task not in ("classification", "image_classification"):
        return {}
    bundle = build_data(read_data(cfg), preprocessor, cfg)
    prec = resolve_precision("fp32", torch.device("cpu"))
    logits, labels = predict_logits(model, bundle.test, bundle.collate, 32, prec)
    z = logits - logits.max(-1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(-1, keepdims=True)                   # (N, C)
    pred = prob.argmax(-1)
    C = bundle.num_labels
    cm = np.zeros((C, C), int)
    np.add.at(cm, (labels.astype(int), pred), 1)                          # rows: true, cols: predicted
    wrong = np.flatnonzero(pred != labels)
    worst = wrong[np.argsort(-prob[wrong, pred[wrong]])][:10]
    names = bundle.label_names
    failures = [{"input": str(bundle.raw_inputs["test"][i])[:400], "source": "{}:{}".format(*bundle.source["test"][i]),
                 "true": names[int(labels[i])], "predicted": names[int(pred[i])],
                 "confidence": float(prob[i, pred[i]])} for i in worst]
    out = {"confusion": cm.tolist(), "label_names": names, "failures": failures,
           "accuracy": float((pred == labels).mean())}
    if bundle.modality == "image":   # an image's "input" is the image itself, not its file name
        out["failure_images"] = [(_viewable(bundle.test[int(i)]["pixel_values"]),
                                  f"{f['true']} → {f['predicted']} ({f['confidence']:.2f})")
                                 for i, f in zip(worst, failures)]
    if baselines:
        out["baselines"] = baseline_scores(cfg, bundle, labels, max_probe_train)
    return out


def _viewable(x) -> np.ndarray:
    """A model input (C, S, S), normalised, back to an (S, S, 3) image in [0, 1] (per-image min-max)."""
    x = np.asarray(x, dtype=np.float32)
    x = x.transpose(1, 2, 0) if x.ndim == 3 else x[..., None]
    x = np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x[..., :3]
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / max(hi - lo, 1e-8)


def baseline_scores(cfg, bundle, test_labels: np.ndarray, max_probe_train: int) -> dict:
    """Majority-class accuracy and a linear probe on the pretrained features (test accuracy)."""
    from sklearn.linear_model import LogisticRegression

    from ..analysis.analyze import pretrained_model

    counts = np.asarray(bundle.class_counts)
    majority = float((test_labels == counts.argmax()).mean())
    base = pretrained_model(cfg, bundle.num_labels)
    rng = np.random.default_rng(cfg.train.seed)
    n = len(bundle.train)
    tr = sorted(rng.choice(n, size=min(n, max_probe_train), replace=False).tolist())
    x_tr = _features(base, bundle.train, bundle.collate, tr)
    y_tr = np.array([bundle.targets["train"][i] for i in tr])
    x_te = _features(base, bundle.test, bundle.collate, list(range(len(bundle.test))))
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    probe = LogisticRegression(max_iter=1000, C=1.0).fit((x_tr - mu) / sd, y_tr)
    return {"majority_class": majority, "linear_probe": float(probe.score((x_te - mu) / sd, test_labels))}
