"""Feature caching: compute what a frozen part of the network outputs once, then train on that.

A frozen layer in eval mode, fed un-augmented data, gives the same output every epoch. Running
it every epoch is wasted work. Two cases are cached:

1. **Features** (feature_extraction): the whole backbone is frozen. `model.features(batch)`,
   shaped (B, H), is computed once per split; `fit()` then trains `HeadOnly`, which is the
   model's own head over a dataset of (features, label). Ten epochs cost one backbone pass plus
   ten passes of a linear layer.
2. **A frozen prefix** (partial): the embeddings/stem and blocks 0..k-1 are frozen and block k
   trains. The *input* of block k is captured once (a forward pre-hook that stops the forward
   there: the rest is not computed), per example: (T_i, H) token states for text,
   (C, h, w) maps for images. `PrefixCached` runs the real model with blocks 0..k-1 swapped for
   `Skip` (they return their input) and block k's input replaced by the cached tensor; for
   image and tensor models the stem is skipped too. Text models keep their (cheap) embeddings,
   because HF models derive the attention mask's dtype from their output.
   The swap is undone after every forward, so checkpoints and the saved model hold every block.
   Before training, one batch is run both ways in eval mode; if the logits differ (a model whose
   forward does more between blocks than we assume), training runs live and the note says why.

The cache is wrong, and training runs live with a note saying so, when: augmentation is on
(inputs differ every epoch), frozen layers run in train mode (dropout, BatchNorm statistics),
freezing changes during the run (gradual unfreezing), or the frozen part is not a prefix. Padded
positions of cached token states are zeros rather than what the live model computes there; they
are masked out of attention and pooling, so real positions are unaffected.

Memory: the prefix cache holds T x H floats per text example (R8 at 128 tokens x 384: 0.2 MB),
so only the train and validation sets are cached (for whole-backbone features too); the test set,
evaluated once, runs live, since caching it would save nothing. Text is encoded in length-sorted
batches, so the cache costs about one bucketed epoch of forward passes.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import nn
from torch.utils.data import Dataset

from .. import progress
from ..config import eval_batch_size
from ..distributed.collective import share, shared_map
from ..evaluate.predict import text_lengths
from ..models.groups import find_block_stack
from ..training.loop import to_device


class Skip(nn.Module):
    """Stands in for a frozen block whose output is replaced anyway: returns its first input."""

    def forward(self, *args, **kwargs):
        return args[0] if args else next(iter(kwargs.values()))


class _Captured(Exception):
    """Raised by the capture hook to stop a forward pass once the cut point is reached."""


@dataclass
class Cut:
    """Where a frozen prefix ends: the input of `cut` (a module path in the TaskModel)."""
    cut: str                           # e.g. "backbone.encoder.layer.4"
    skip: list[str]                    # frozen modules replaced by Skip while training
    frozen_units: int                  # blocks (or top-level children) before the cut


# ---- deciding what can be cached -----------------------------------------------------------

def frozen_prefix(model: nn.Module) -> Union[str, Cut]:
    """`"features"` if only the head trains, a `Cut` if a prefix of blocks is frozen, else why not (a sentence)."""
    if not (hasattr(model, "backbone") and hasattr(model, "head") and hasattr(model, "features")):
        return "the model is not a TaskModel (no backbone/head split)"
    params = list(model.named_parameters())
    trainable = {n for n, p in params if p.requires_grad}
    if not trainable:
        return "no parameter trains"
    head_params = [n for n, _ in params if n.startswith("head.")]
    if model.task != "causal_lm" and head_params and trainable <= set(head_params):
        return "features"
    backbone = model.backbone
    stack = find_block_stack(backbone)
    if stack is not None:
        stack_name, container = stack
        base = "backbone." + (stack_name + "." if stack_name else "")
        units = [f"{base}{i}" for i in range(len(container))]
    else:
        units = [f"backbone.{n}" for n, m in backbone.named_children() if any(True for _ in m.parameters())]
    owner = {}                                 # parameter name -> its unit (or None: outside the units)
    for n, _ in params:
        owner[n] = next((u for u in units if n.startswith(u + ".")), None)
    k = next((i for i, u in enumerate(units) if any(owner[n] == u for n in trainable)), None)
    if k is None:
        return "no block trains (only layers after the blocks or the head): a prefix cache cuts at a block"
    if k == 0:
        return "the first block trains, so there is no frozen prefix to cache"
    first = next(i for i, (n, _) in enumerate(params) if owner[n] == units[k])
    before = [n for n, _ in params[:first]]
    if any(n in trainable for n in before):
        hot = next(n for n in before if n in trainable)
        return f"{hot} trains below the first trained block, so the frozen layers are not a prefix"
    skip = units[:k]
    if model.modality != "text":               # the stem too: its output is replaced at the cut anyway
        stem = [n.rsplit(".", 1)[0] for n in before if owner[n] is None and n.startswith("backbone.")]
        skip = list(dict.fromkeys(stem)) + skip
    return Cut(units[k], skip, k)


# ---- computing the cache ---------------------------------------------------------------------

def _order(n: int, lengths: Optional[list[int]]) -> list[int]:
    """Example indices sorted by token length for text (`text_lengths`), so each batch pads little (the cache
    then costs about one bucketed epoch of forward passes); dataset order otherwise."""
    if lengths is None:
        return list(range(n))
    return sorted(range(n), key=lambda i: lengths[i])


@torch.no_grad()
def compute_features(model: nn.Module, dataset: Dataset, collate: Callable, batch_size: int,
                     device: torch.device, label: str = "features") -> tuple[torch.Tensor, list]:
    """`model.features` of every example in dataset order, (N, H) float32 on the CPU (eval mode), and the labels."""
    was_training = model.training
    model.eval()
    out: list = [None] * len(dataset)
    labels: list = [None] * len(dataset)
    lengths = text_lengths(dataset)
    order = _order(len(dataset), lengths)
    chunks = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    with progress.phase(label, sum(map(len, share(chunks))), work_total=progress.padded_work(share(chunks), lengths)) \
            as shown:
        def encode(idx: list[int]) -> torch.Tensor:
            feats = model.features(to_device(collate([dataset[j] for j in idx]), device)).float().cpu()
            # this rank's share under torchrun (only rank 0 shows it)
            shown.advance(len(idx), work=progress.padded_work([idx], lengths) or 0.0)
            return feats
        # Several ranks under torchrun: each batch is encoded once in the whole world and gathered to all.
        encoded = shared_map(encode, chunks)
    for idx, feats in zip(chunks, encoded):
        for j, f in zip(idx, feats):                                        # (B, H) -> back in dataset order
            out[j], labels[j] = f, dataset[j].get("labels")
    model.train(was_training)
    return (torch.stack(out) if out else torch.zeros(0)), labels


@torch.no_grad()
def compute_prefix(model: nn.Module, cut: Cut, dataset: Dataset, collate: Callable, batch_size: int,
                   device: torch.device, label: str = "feature cache") -> list[torch.Tensor]:
    """The input of `cut.cut` for every example: (T_i, H) for text (real tokens only), else the map."""
    module = model.get_submodule(cut.cut)
    captured: list[torch.Tensor] = []

    def hook(_module, args, kwargs):
        captured.append(args[0] if args else next(iter(kwargs.values())))
        raise _Captured

    def encode(idx: list[int]) -> list[torch.Tensor]:
        batch = to_device(collate([dataset[j] for j in idx]), device)
        captured.clear()
        with contextlib.suppress(_Captured):
            model(batch)
        h = captured[0].float().cpu()
        shown.advance(len(idx), work=progress.padded_work([idx], row_lengths) or 0.0)
        if "attention_mask" in batch:             # (B, T, H): keep each example's real tokens (right padding)
            lengths = batch["attention_mask"].sum(1).tolist()
            return [h[i, :n].clone() for i, n in enumerate(lengths)]
        return [h[i].clone() for i in range(len(idx))]

    was_training = model.training
    model.eval()
    out: list = [None] * len(dataset)
    row_lengths = text_lengths(dataset)        # (`encode` has its own `lengths`: each row's real tokens)
    order = _order(len(dataset), row_lengths)
    chunks = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    shown = progress.phase(label, sum(map(len, share(chunks))),
                           work_total=progress.padded_work(share(chunks), row_lengths))
    try:
        # Several ranks under torchrun: each batch is encoded once in the whole world and gathered to all.
        for idx, states in zip(chunks, shared_map(encode, chunks)):
            for j, h in zip(idx, states):
                out[j] = h
    finally:
        shown.close()
        handle.remove()
        model.train(was_training)
    return out


# ---- what fit() trains on the cache -----------------------------------------------------------

class CachedDataset(Dataset):
    """Example i is {key: cache[i], "labels": labels[i]}, or base[i] plus the cached tensor when `base` is
    given (the prefix cache still needs the input ids: attention masks are computed from them)."""

    def __init__(self, cache, key: str, labels: Optional[list] = None, base: Optional[Dataset] = None):
        self.cache, self.key, self.labels, self.base = cache, key, labels, base

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i]) if self.base is not None else {}
        if self.labels is not None and self.labels[i] is not None:
            item["labels"] = self.labels[i]
        item[self.key] = self.cache[i]
        return item


class CachedCollate:
    """The base collate for everything but the cached key; cached tensors are stacked, or right-padded
    with zeros to the batch's token length for text."""

    def __init__(self, base: Callable, key: str):
        self.base, self.key = base, key

    def __call__(self, items: list[dict]) -> dict:
        cached = [it[self.key] for it in items]
        batch = self.base([{k: v for k, v in it.items() if k != self.key} for it in items])
        if "attention_mask" in batch and cached[0].dim() == 2:
            out = cached[0].new_zeros(len(cached), batch["attention_mask"].shape[1], cached[0].shape[-1])
            for i, h in enumerate(cached):             # (T_i, H) -> row i of (B, T, H)
                out[i, :h.shape[0]] = h
            batch[self.key] = out
        else:
            batch[self.key] = torch.stack(cached)
        return batch


class HeadOnly(nn.Module):
    """The task model's head over cached features: forward(batch) = head(batch["features"])."""

    def __init__(self, head: nn.Module, task: str):
        super().__init__()
        self.head, self.task = head, task

    def forward(self, batch: dict) -> torch.Tensor:
        logits = self.head(batch["features"])                                 # (B, C)
        return logits.squeeze(-1) if self.task == "regression" else logits   # regression: (B,)


@contextlib.contextmanager
def _swapped(root: nn.Module, paths: list[str]):
    """Replace the modules at `paths` with Skip for the duration of the block."""
    saved = []
    try:
        for path in paths:
            parent_path, _, name = path.rpartition(".")
            parent = root.get_submodule(parent_path) if parent_path else root
            saved.append((parent, name, getattr(parent, name)))
            setattr(parent, name, Skip())
        yield
    finally:
        for parent, name, module in reversed(saved):
            setattr(parent, name, module)


class PrefixCached(nn.Module):
    """The real model with its frozen prefix replaced by the cached input of the first trained block."""

    def __init__(self, model: nn.Module, cut: Cut):
        super().__init__()
        self.model, self.cut = model, cut

    def forward(self, batch: dict) -> torch.Tensor:
        cached = batch["prefix_out"]                   # (B, T, H) text / (B, C, h, w) images

        def replace_input(_module, args, kwargs):
            if args:
                return (cached.to(args[0].dtype),) + tuple(args[1:]), kwargs
            key = next(iter(kwargs))
            return args, {**kwargs, key: cached.to(kwargs[key].dtype)}

        handle = self.model.get_submodule(self.cut.cut).register_forward_pre_hook(replace_input, with_kwargs=True)
        try:
            with _swapped(self.model, self.cut.skip):
                return self.model(batch)
        finally:
            handle.remove()


# ---- the prepare step run.py calls ------------------------------------------------------------

def cache_reasons(cfg) -> list[str]:
    """Why a cache would be wrong for this config (empty: it is allowed)."""
    from ..data.augment import active_augmentations
    reasons = []
    aug = active_augmentations(cfg.data)
    if aug:
        reasons.append(f"augmentation is on ({', '.join(aug)}): inputs differ every epoch")
    if cfg.strategy_options.frozen_train_mode:
        reasons.append("frozen layers run in train mode (strategy_options.frozen_train_mode)")
    return reasons


def _verify(model: nn.Module, cached_model: nn.Module, live_batch: dict, cached_batch: dict) -> Optional[str]:
    """None if both paths give the same logits on one batch in eval mode, else why not."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            live, cached = model(live_batch), cached_model(cached_batch)
    except Exception as e:  # noqa: BLE001 - the cache is an optimisation: any failure means run live
        return f"the cached path failed on a test batch ({type(e).__name__}: {e})"
    finally:
        model.train(was)
    diff = float((live.float() - cached.float()).abs().max())
    scale = float(live.float().abs().max()) + 1.0
    if diff > 1e-4 * scale:
        return f"cached and live logits differ by {diff:.2e} on a test batch"
    return None


def cache_fit_data(data, model: nn.Module, cfg, device: torch.device, notes: list[str]):
    """`FitData` over cached features or a cached prefix, or `data` unchanged (with a note saying why)."""
    from ..training.plan import FitData

    what = frozen_prefix(model)
    if isinstance(what, str) and what != "features":
        notes.append(f"feature cache: not used, {what}; training runs live")
        return data
    bs = eval_batch_size(cfg.train)
    t0 = time.perf_counter()
    # Train and validation only: they are read every epoch. The test set is read once, at the end, so
    # caching it would save nothing; it runs live (and cache_seconds is the cost of training alone).
    splits = {"train": data.train, **{s: ds for s, (_, ds, _) in data.evals.items() if ds is not None and s == "val"}}
    if what == "features":
        head = HeadOnly(model.head, model.task)
        collate = CachedCollate(data.collate, "features")
        sets = {}
        for s, ds in splits.items():
            feats, labels = compute_features(model, ds, data.collate, bs, device, label=f"feature cache ({s})")
            sets[s] = CachedDataset(feats, "features", labels)
        seconds = time.perf_counter() - t0
        notes.append(f"feature cache: backbone features of {sum(map(len, sets.values()))} examples "
                     f"({', '.join(sets)}) computed once in {seconds:.1f} s; the head trains on them")
        evals = {**data.evals, **{s: (head, sets[s], collate) for s in sets if s != "train"}}
        return FitData(head, sets["train"], collate, data.lengths, evals, cache_seconds=seconds)

    cut = what                                         # train and val only: see the module docstring
    wrapped = PrefixCached(model, cut)
    collate = CachedCollate(data.collate, "prefix_out")
    sets = {s: CachedDataset(compute_prefix(model, cut, ds, data.collate, bs, device, label=f"feature cache ({s})"),
                            "prefix_out", base=ds)
            for s, ds in splits.items()}
    n = min(8, len(data.train))
    why = _verify(model, wrapped, to_device(data.collate([data.train[i] for i in range(n)]), device),
                  to_device(collate([sets["train"][i] for i in range(n)]), device))
    if why is not None:
        notes.append(f"feature cache: not used, {why}; training runs live")
        return data
    seconds = time.perf_counter() - t0
    evals = {**data.evals, **{s: (wrapped, sets[s], collate) for s in sets if s != "train"}}
    notes.append(f"feature cache: the frozen prefix ({cut.frozen_units} blocks below {cut.cut}) of "
                 f"{sum(map(len, sets.values()))} examples ({', '.join(sets)}) computed once in {seconds:.1f} s; "
                 f"training runs from {cut.cut} up")
    return FitData(wrapped, sets["train"], collate, data.lengths, evals, cache_seconds=seconds)
