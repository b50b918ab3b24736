"""The inputs of meta-learning: every example of the class pool as one tensor, and the class split.

Images (Fashion-MNIST, MNIST, ...) are the pixels, (N, 1, 28, 28). Text (Reuters-R52, 20 Newsgroups or a
text/label file) is the frozen sentence features of `model.name` (MiniLM by default), (N, H), computed
once and cached (models/frozen_text.py); a trainable trunk (tunewright.zoo:mlp_trunk) then learns on them.
Fine-tuning MiniLM itself inside every inner loop would cost ~1 s per 32 texts and step here, hours per
table row, so the backbone stays frozen and the trunk is what meta-learns: the docs say so next to
every figure.

A class with fewer than `meta.min_per_class` examples (default k_shot + q_queries) cannot fill an
episode. Such classes are left out of both pools, and the loader says which ones and why (`excluded`,
printed and written to the summary), rather than failing on the first one or dropping them silently.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..assets.datasets import get_dataset
from ..data.examples import image_tensors
from ..errors import ConfigError
from ..models.frozen_text import text_features
from .core import split_classes


@dataclass
class MetaData:
    x: torch.Tensor                    # (N, ...) pixels or frozen features
    y: torch.Tensor                    # (N,) class ids, indices into `names`
    train_classes: list[int]
    test_classes: list[int]
    names: list[str]                   # class id -> the label as the data spell it
    modality: str                      # "image" | "text"
    excluded: dict = field(default_factory=dict)   # class name -> examples, too few for an episode


def _is_file(name: str) -> bool:
    """A path to a text/label file rather than a packaged dataset's name."""
    return bool(Path(name).suffix) or Path(name).exists()


def modality(name: str) -> str:
    """"text" for a file or a packaged text set, else the packaged set's modality."""
    return "text" if _is_file(name) else get_dataset(name).modality


def _cap(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """At most `per_class` examples of each class, a seeded choice; indices in class order."""
    return np.concatenate([np.random.default_rng(seed + int(c)).permutation(np.flatnonzero(y == c))[:per_class]
                           for c in np.unique(y)])


def _class_ids(test_classes, names: list[str]) -> list[int]:
    """meta.test_classes as ids: given as ids, or as the labels' own names (text)."""
    out = []
    for c in test_classes:
        if str(c) in names:
            out.append(names.index(str(c)))
        elif str(c).isdigit():
            out.append(int(c))
        else:
            raise ConfigError(f"meta.test_classes: {c!r} is not a class of the data; the classes are {names}")
    return out


def _split(cfg, y: np.ndarray, names: list[str]) -> tuple[list[int], list[int], dict]:
    m = cfg.meta
    need = m.min_per_class or m.k_shot + m.q_queries
    counts = np.bincount(y, minlength=len(names))
    excluded = {names[c]: int(n) for c, n in enumerate(counts) if n < need}
    test = _class_ids(m.test_classes, names)
    short = [names[c] for c in test if 0 <= c < len(names) and counts[c] < need]
    if short:
        raise ConfigError(f"meta.test_classes: {short} have fewer than {need} examples (k_shot + q_queries or "
                          f"meta.min_per_class): {[int(counts[names.index(s)]) for s in short]}")
    if excluded:
        print(f"note: {len(excluded)} classes have fewer than {need} examples and are in neither pool: "
              f"{excluded}", file=sys.stderr)
    usable = [c for c in range(len(names)) if counts[c] >= need]
    train_cls, test_cls = split_classes(usable, test)
    return train_cls, test_cls, excluded


def load_images(cfg, dataset: str | None = None) -> MetaData:
    """Pixels (N, 1, 28, 28) of `dataset` (default `meta.dataset`), `meta.per_class` images per class (seeded)."""
    m = cfg.meta
    asset = get_dataset(dataset or m.dataset)
    names = list(getattr(asset, "label_names", None) or [])
    x, y = image_tensors(asset.load()["train"], names or None)
    keep = _cap(y.numpy(), m.per_class, cfg.train.seed)
    x, y = x[keep], y[keep]
    names = names or [str(c) for c in range(int(y.max()) + 1)]
    train_cls, test_cls, excluded = _split(cfg, y.numpy(), names)
    return MetaData(x, y, train_cls, test_cls, names, "image", excluded)


def _text_rows(cfg, name: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of a packaged text set (train and test pooled: meta-learning splits by class, so
    both splits of a class belong to the same pool) or of a text/label file, bad rows named as in `train`."""
    if _is_file(name):
        from ..data.readers import BadRowBudget, Columns, read_file
        from ..errors import DataError
        d = cfg.data
        rows = read_file(name, Columns(((d.text_column,),), d.label_column), BadRowBudget(d.max_bad_rows))
        if not rows:
            raise DataError("no rows", path=name)
        return [r.text for r in rows], [str(r.label) for r in rows]
    frames = get_dataset(name).load()
    texts, labels = [], []
    for split in ("train", "test"):
        f = frames.get(split)
        if f is not None:
            texts += f["text"].astype(str).tolist()
            labels += f["label"].astype(str).tolist()
    return texts, labels


def load_text(cfg, cache_dir=None, dataset: str | None = None) -> MetaData:
    """Frozen `model.name` features (N, H) of `meta.per_class` texts per class (seeded)."""
    m = cfg.meta
    texts, labels = _text_rows(cfg, dataset or m.dataset)
    names = sorted(set(labels))
    y = np.array([names.index(v) for v in labels])
    keep = _cap(y, m.per_class, cfg.train.seed)
    x = text_features([texts[i] for i in keep], cfg.model.name, cfg.data.max_length, cache_dir=cache_dir,
                      label="meta-learning features")
    y = torch.from_numpy(y[keep])
    train_cls, test_cls, excluded = _split(cfg, y.numpy(), names)
    return MetaData(x, y, train_cls, test_cls, names, "text", excluded)


def load_meta_data(cfg, cache_dir=None, dataset: str | None = None) -> MetaData:
    """The pool of `dataset` (default `meta.dataset`): images or text, by what the data are."""
    name = dataset or cfg.meta.dataset
    return load_text(cfg, cache_dir, name) if modality(name) == "text" else load_images(cfg, name)
