"""One function per figure: plain data in, a base64 PNG out (matplotlib's Agg backend, no display).

Each returns None when the data for it is absent, and the page leaves the figure out with a note.
"""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runs import per_epoch, series  # noqa: E402


def png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def loss_curves(rows) -> str | None:
    """Train loss per logged step, val loss per evaluation, and the gap val - train."""
    ts, tl = series(rows, "train", "loss")
    vs, vl = series(rows, "val", "loss")
    if not ts:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    # Not the same measurement: the train loss is taken in training mode (dropout on) and averaged over
    # each logging window; the val loss in eval mode at one point. Labelled so the gap is read as such.
    a.plot(ts, tl, label="train (training mode, mean per log window)")
    a.plot(vs, vl, "o-", label="val (eval mode)")
    a.set(xlabel="step", ylabel="loss", title="loss")
    a.legend()
    gap = [v - float(np.interp(s, ts, tl)) for s, v in zip(vs, vl)]  # train loss interpolated at the eval step
    b.axhline(0, color="grey", lw=0.8)
    b.plot(vs, gap, "o-", color="C3")
    b.set(xlabel="step", ylabel="val loss - train loss", title="generalization gap")
    return png(fig)


def lr_curves(rows) -> str | None:
    keys = sorted({k for r in rows if r.get("split") == "train" for k in r if k.startswith("lr/")}) or ["lr"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    drawn = 0
    for k in keys:
        s, v = series(rows, "train", k)
        if s:
            ax.plot(s, v, label=k.removeprefix("lr/"))
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="step", ylabel="learning rate", title="LR per param group")
    if drawn <= 12:
        ax.legend(fontsize=7)
    return png(fig)


def grad_norms(rows) -> str | None:
    keys = sorted({k for r in rows if r.get("split") == "train" for k in r if k.startswith("grad_norm/")})
    s, g = series(rows, "train", "grad_norm")
    if not s:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    a.plot(s, g)
    a.set(xlabel="step", ylabel="||g|| (before clipping)", title="global gradient norm", yscale="log")
    for k in keys:
        ks, kv = series(rows, "train", k)
        b.plot(ks, kv, label=k.removeprefix("grad_norm/"))
    b.set(xlabel="step", ylabel="||g||", title="gradient norm per layer group", yscale="log")
    if keys:
        b.legend(fontsize=7)
    return png(fig)


def metric_per_epoch(rows, metrics=("accuracy", "macro_f1")) -> str | None:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    drawn = 0
    for m in metrics:
        e, v = per_epoch(rows, m)
        if e:
            ax.plot(e, v, "o-", label=f"val {m}")
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="epoch", ylabel="metric", title="validation metric per evaluation")
    ax.legend()
    return png(fig)


def confusion(cm, names) -> str:
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(names), 1.0 + 0.5 * len(names)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    return png(fig)


def image_grid(items: list[tuple[np.ndarray, str]], title: str) -> str | None:
    """items: [(image (H, W, 3) in [0, 1], caption)], drawn five to a row."""
    if not items:
        return None
    cols = min(5, len(items))
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.2 * rows + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (img, caption) in zip(axes.ravel(), items):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return png(fig)


def accuracy_vs_params(points: list[dict], metric: str = "test_accuracy") -> str | None:
    """points: [{variant, trainable_params, <metric>}]; log x axis."""
    pts = [p for p in points if p.get(metric) is not None and p.get("trainable_params")]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for p in pts:
        ax.scatter(p["trainable_params"], p[metric], s=40)
        ax.annotate(p["variant"], (p["trainable_params"], p[metric]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set(xscale="log", xlabel="trainable parameters", ylabel=metric.replace("_", " "),
           title="accuracy against trainable parameters")
    return png(fig)


def baselines(scores: dict[str, float]) -> str:
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.45 * len(scores)))
    names, vals = list(scores), [scores[k] for k in scores]
    ax.barh(names, vals, color=["C0" if "baseline" not in n else "grey" for n in names])
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    ax.set(xlim=(0, 1.1), xlabel="test accuracy", title="against the baselines")
    return png(fig)


def bars(values: dict[str, float], title: str, xlabel: str) -> str | None:
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.8 + 0.3 * len(values)))
    ax.barh(list(values), list(values.values()))
    ax.invert_yaxis()                                  # bottom layer first, top of the chart
    ax.set(xlabel=xlabel, title=title)
    ax.tick_params(axis="y", labelsize=7)
    return png(fig)


def lora_spectra(lora: dict) -> str | None:
    if not lora:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, d in lora.items():
        a.plot(range(1, len(d["sigma"]) + 1), d["sigma"], alpha=0.5)
    a.set(xlabel="index", ylabel="singular value", title="singular values of each learned update", yscale="log")
    names = list(lora)
    b.barh(range(len(names)), [lora[n]["effective_rank"] for n in names])
    b.set_yticks(range(len(names)), [n[-40:] for n in names], fontsize=5)
    b.set(xlabel="effective rank", title="effective rank per adapted layer")
    return png(fig)


def pca(p: dict) -> str | None:
    if not p:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    y = np.asarray(p["labels"])
    names = p.get("label_names") or [str(i) for i in range(int(y.max()) + 1)]
    for ax, key in zip(axes, ("before", "after")):
        xy = np.asarray(p[key])
        for c in np.unique(y):
            m = y == c
            ax.scatter(xy[m, 0], xy[m, 1], s=8, label=names[int(c)])
        ax.set(title=f"features {key} fine-tuning (PCA)", xticks=[], yticks=[])
    axes[1].legend(fontsize=7, markerscale=2, loc="best")
    return png(fig)


def robustness(r: dict) -> str | None:
    if not r:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for kind, accs in r.items():
        ax.plot(range(len(accs)), accs, "o-", label=kind)
    ax.set(xticks=range(4), xlabel="severity (0: clean)", ylabel="accuracy", title="robustness to input corruptions")
    ax.legend()
    return png(fig)


def overlay(runs: dict[str, list[dict]], split: str, key: str, title: str) -> str | None:
    """One line per variant of a comparison."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    drawn = 0
    for name, rows in runs.items():
        s, v = series(rows, split, key)
        if s:
            ax.plot(s, v, "o-" if split == "val" else "-", label=name, ms=3)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="step", ylabel=f"{split} {key}", title=title)
    ax.legend(fontsize=7)
    return png(fig)
