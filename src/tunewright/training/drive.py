"""Small shared pieces for the drivers that call `fit()` many times (multitask/, continual/, meta/, domain/).

`fit_examples(model, dataset, cfg, ...)` is `fit()` with the optimizer, precision and loss the drivers
share: AdamW over the parameters that train, a constant LR, fp32, no checkpoints. The drivers keep
their data as tensors (`Examples`, a dataset of example dicts) so one collate (`stack_collate`) serves
images, cached text features and episodes alike.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .loop import TrainState, fit
from .precision import resolve_precision


class Examples(Dataset):
    """Columns of equal length -> a dataset of example dicts: `Examples(inputs=x, labels=y)[i]`."""

    def __init__(self, **columns):
        lens = {k: len(v) for k, v in columns.items()}
        assert len(set(lens.values())) == 1, f"columns differ in length: {lens}"
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.columns.items()}

    def subset(self, idx) -> "Examples":
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return Examples(**{k: v[idx] for k, v in self.columns.items()})


def stack_collate(examples: list[dict]) -> dict:
    """A list of example dicts of tensors/numbers -> a batch dict of stacked tensors."""
    out = {}
    for k in examples[0]:
        vals = [e[k] for e in examples]
        out[k] = torch.stack(vals) if torch.is_tensor(vals[0]) else torch.tensor(vals)
    return out


def cross_entropy(logits, batch):
    return F.cross_entropy(logits.float(), batch["labels"])


def fit_examples(model: torch.nn.Module, dataset, cfg, *, loss_fn: Callable = cross_entropy, callbacks: Sequence = (),
                 lr: Optional[float] = None, epochs: Optional[int] = None, max_steps: Optional[int] = None,
                 seed: Optional[int] = None, batch_size: Optional[int] = None, collate: Callable = stack_collate,
                 params=None, epoch_batches: Optional[Callable] = None, weight_decay: float = 0.0) -> TrainState:
    """Train `model` on `dataset` with the one `fit()`: AdamW (no weight decay by default, so head rows
    of classes that get no gradient stay put), constant LR, fp32, on the CPU or `train.device`."""
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    t = dataclasses.replace(t, epochs=epochs or t.epochs, max_steps=max_steps, seed=t.seed if seed is None else seed,
                            batch_size=batch_size or t.batch_size, eval_every_steps=None, grad_accum=1)
    run_cfg = dataclasses.replace(cfg, train=t, data=dataclasses.replace(cfg.data, bucket=False))
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr or t.lr, weight_decay=weight_decay)
    precision = resolve_precision("fp32", torch.device("cpu"))
    return fit(model, dataset, collate, optimizer, None, run_cfg, loss_fn=loss_fn, precision=precision,
               callbacks=callbacks, epoch_batches=epoch_batches)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, dataset, batch_size: int = 512, collate: Callable = stack_collate):
    """(logits, labels) over a whole dataset, in eval mode."""
    was = model.training
    model.eval()
    outs, labels = [], []
    for s in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(s, min(s + batch_size, len(dataset)))])
        outs.append(model(batch))
        labels.append(batch["labels"])
    model.train(was)
    return torch.cat(outs), torch.cat(labels)


def accuracy(model: torch.nn.Module, dataset, batch_size: int = 512) -> float:
    logits, labels = predict_logits(model, dataset, batch_size)
    return float((logits.argmax(-1) == labels).float().mean())


# --- data the drivers share -----------------------------------------------------------------------

def image_tensors(frame, label_names=None, size: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """A packaged image DataFrame (one (H, W) uint8 array per row) -> (x (N, 1, size, size) in [0, 1], y (N,)).

    Images smaller than `size` (sklearn digits, 8x8) are resized to size-8 and padded by 4 on each
    side, the way MNIST centres a 20x20 digit in 28x28."""
    x = torch.from_numpy(np.stack(frame["image"].to_numpy())).float().div(255.0).unsqueeze(1)
    if x.shape[-1] != size:
        inner = size - 8 if x.shape[-1] < size else size
        x = F.interpolate(x, size=(inner, inner), mode="bilinear", align_corners=False)
        pad = (size - inner) // 2
        x = F.pad(x, (pad, pad, pad, pad))
    labels = frame["label"].tolist()
    if label_names is not None:
        index = {n: i for i, n in enumerate(label_names)}
        labels = [index[v] for v in labels]
    return x.contiguous(), torch.tensor([int(v) for v in labels])


def text_features(texts: list[str], model_name: str = "minilm", max_length: int = 128,
                  batch_size: int = 64, cache_dir=None) -> torch.Tensor:
    """Frozen sentence features (N, H) of a text backbone (`TaskModel.features`: its own pooling).

    The drivers' text examples train on these: a MiniLM forward costs ~1 s per 32 texts on this
    CPU, so computing it once lets a sequence of tasks or a multi-task run train in seconds.
    With `cache_dir`, features are stored under a hash of (model, max_length, texts) and reused."""
    import hashlib
    from pathlib import Path

    from ..config.load import config_from_dict
    from ..models import load_model

    path = None
    if cache_dir is not None:
        key = hashlib.sha1("\x00".join([model_name, str(max_length), *texts]).encode()).hexdigest()[:20]
        path = Path(cache_dir) / f"{key}.safetensors"
        if path.is_file():
            from safetensors.torch import load_file
            return load_file(str(path))["features"]

    cfg = config_from_dict({"model": {"name": model_name}, "task": "classification"})
    model, tok = load_model(cfg, 2)
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), batch_size):
            enc = tok(list(texts[s:s + batch_size]), truncation=True, max_length=max_length, padding=True,
                      return_tensors="pt")
            out.append(model.features(dict(enc)))
    feats = torch.cat(out)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file
        save_file({"features": feats.contiguous()}, str(path))  # never pickle (weights are data, not code)
    return feats


def text_task(name: str, split: str, n, seed: int, model_name: str = "minilm", max_length: int = 128,
              cache_dir=None) -> tuple[torch.Tensor, list[str], list[str]]:
    """(features (n, H), labels as strings, sorted label names of the train split) of a stratified
    subset of a packaged text dataset's `split`."""
    from ..assets.datasets import get_dataset

    frames = get_dataset(name).load()
    names = sorted(set(frames["train"]["label"].astype(str)))
    frame = frames[split]
    labels = frame["label"].astype(str).tolist()
    idx = stratified_subset(labels, n, seed)
    feats = text_features([str(frame["text"].iloc[i]) for i in idx], model_name, max_length, cache_dir=cache_dir)
    return feats, [labels[i] for i in idx], names


def stratified_subset(labels: Sequence, n: Optional[int], seed: int) -> np.ndarray:
    """Indices of a seeded subset of about n rows with the class proportions of `labels` (all when n is None)."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(1, int(round(n * len(idx) / len(labels))))
        keep.extend(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.array(keep))


class EncoderHead(torch.nn.Module):
    """`encoder` (batch["inputs"] -> (B, H)) + `head`: the TaskModel contract (`features`, `forward`)
    for the drivers' tensor examples."""

    def __init__(self, encoder: torch.nn.Module, head: torch.nn.Module):
        super().__init__()
        self.backbone, self.head = encoder, head

    def features(self, batch: dict) -> torch.Tensor:
        return self.backbone(batch["inputs"])

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(self.features(batch))


def build_encoder(cfg, in_features: Optional[int] = None) -> torch.nn.Module:
    """The drivers' encoder: a `package.module:function` factory from `model.name` (default
    `tunewright.zoo:small_cnn`), called with `model.factory_kwargs` (and `in_features` when given)."""
    from ..models.backbones import import_factory

    name = cfg.model.name if ":" in cfg.model.name else "tunewright.zoo:small_cnn"
    kwargs = dict(cfg.model.factory_kwargs)
    if in_features is not None:
        kwargs.setdefault("in_features", in_features)
    return import_factory(name)(**kwargs)


def batches_forever(dataset, batch_size: int, seed: int):
    """An endless iterator of shuffled batches (the unlabeled target stream of domain adaptation)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(dataset), generator=g)
        for s in range(0, len(perm) - batch_size + 1, batch_size):
            yield stack_collate([dataset[int(i)] for i in perm[s:s + batch_size]])
