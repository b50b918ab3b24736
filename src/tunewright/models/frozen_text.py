"""Text tasks for the drivers (multitask/, continual/): frozen sentence features of a text backbone,
or token ids for a live one.

A MiniLM forward costs ~1 s per 32 texts on this CPU, so computing the features once lets a sequence
of tasks or a multi-task run train in seconds.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..assets.datasets import get_dataset
from ..config.load import config_from_dict
from ..data.splits import subset_indices
from ..progress import track
from .load import load_model


def text_features(texts: list[str], model_name: str = "minilm", max_length: int = 128,
                  batch_size: int = 64, cache_dir=None, label: str = "frozen text features") -> torch.Tensor:
    """Frozen sentence features (N, H) of a text backbone (`TaskModel.features`: its own pooling).

    With `cache_dir`, features are stored under a hash of (model, max_length, texts) and reused.
    Computing them shows progress under `label` (minutes for a few thousand texts on a CPU)."""
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
        for s in track(range(0, len(texts), batch_size), label, total=len(texts), unit="texts",
                       size=lambda s: min(batch_size, len(texts) - s)):
            enc = tok(list(texts[s:s + batch_size]), truncation=True, max_length=max_length, padding=True,
                      return_tensors="pt")
            out.append(model.features(dict(enc)))
    feats = torch.cat(out)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file
        save_file({"features": feats.contiguous()}, str(path))  # never pickle (weights are data, not code)
    return feats


def text_subset(name: str, split: str, n, seed: int) -> tuple[list[str], list[str], list[str]]:
    """(texts, labels as strings, sorted label names of the train split) of a stratified subset of a
    packaged text dataset's `split`."""
    frames = get_dataset(name).load()
    names = sorted(set(frames["train"]["label"].astype(str)))
    frame = frames[split]
    labels = frame["label"].astype(str).tolist()
    idx = subset_indices(len(labels), labels, n, seed)[0]
    return [str(frame["text"].iloc[i]) for i in idx], [labels[i] for i in idx], names


def text_task(name: str, split: str, n, seed: int, model_name: str = "minilm", max_length: int = 128,
              cache_dir=None) -> tuple[torch.Tensor, list[str], list[str]]:
    """(features (n, H), labels as strings, sorted label names of the train split) of `text_subset`."""
    texts, labels, names = text_subset(name, split, n, seed)
    return text_features(texts, model_name, max_length, cache_dir=cache_dir), labels, names


def tokenized(tok, texts: list[str], max_length: int) -> dict:
    """{"input_ids", "attention_mask"}: (N, max_length) each, padded to max_length so that every task's rows
    stack into one tensor (a live encoder cuts each batch to its longest row)."""
    enc = tok(list(texts), truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
