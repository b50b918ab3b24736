"""Datasets held as tensors, for the drivers that call `fit()` many times (multitask/, continual/,
meta/, domain/): `Examples` (columns -> example dicts), one collate for all of them (`stack_collate`),
packaged image frames as tensors, and an endless batch stream.

The drivers keep their data as tensors so that one collate serves images, cached text features and
episodes alike.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


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


def batches_forever(dataset, batch_size: int, seed: int):
    """An endless iterator of shuffled batches (the unlabeled target stream of domain adaptation)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(dataset), generator=g)
        for s in range(0, len(perm) - batch_size + 1, batch_size):
            yield stack_collate([dataset[int(i)] for i in perm[s:s + batch_size]])


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
