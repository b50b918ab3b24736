"""The continual-learning driver: `fit()` once per task, in order, then the accuracy matrix R.

All tasks share one backbone and one output layer over every class. `continual.scenario`:
- task (task-incremental): each example knows its task, and logits outside its task's classes are
  masked (-1e9) in the loss and at evaluation ("multi-head" by masking);
- class (class-incremental): the prediction is over every class seen so far, no task id. A method
  that declares `needs_task_id` (adapters: it routes each example to its task's adapter) always uses it.
adapters: one bottleneck adapter per task inside the backbone, after each of its layers
(peft/task_adapters.py); the backbone trains on task 0 only, then only task t's adapter and the
head rows of task t's classes can change, so earlier tasks cannot be forgotten.
Benchmarks:
- split-fashion-mnist: classes (0,1), (2,3), ..., (8,9) as 5 tasks, on `model.name`: a factory
  (`tunewright.zoo:small_cnn`, 28x28 pixels) or a pretrained image model (efficientnet-lite0),
  fine-tuned live at `data.image_size` with `strategy` and `method` applied (live_encoder.py);
- text: `continual.text_tasks` in order (default R8 -> 20 Newsgroups -> drug reviews): frozen MiniLM
  sentence features (computed once) under a trainable trunk (`tunewright.zoo:mlp_trunk`), or, with
  `continual.cache_features: false`, MiniLM itself trained live (e.g. `method: lora`).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..assets.datasets import FASHION_MNIST_CLASSES, get_dataset
from ..peft.task_adapters import add_task_adapters, set_task
from ..config.schema import eval_batch_size
from ..data.examples import Examples, image_tensors, stack_collate
from ..data.splits import subset_indices
from ..evaluate.predict import accuracy
from ..live_encoder import live_encoder
from ..models import load_model, load_tokenizer
from ..models.encoder_head import build_encoder
from ..models.frozen_text import text_subset, text_task, tokenized
from ..strategies.frozen_mode import recalibrate_bn
from ..training.fit_examples import fit_examples
from ..training.phased import PhaseCheckpoints
from .core import average_accuracy, backward_transfer, forward_transfer
from .methods import check_continual, freeze_for_task, method_class  # noqa: F401  (freeze_for_task: tests and callers import it here)


class ContinualModel(nn.Module):
    """Shared backbone (with one bottleneck adapter per task inside it, for the adapters method) ->
    one linear layer over all classes, masked per task."""

    def __init__(self, encoder: nn.Module, num_classes: int, task_classes: list[list[int]],
                 adapter_dim: Optional[int] = None, activation: str = "relu", target_modules=("auto",)):
        super().__init__()
        dim = encoder.feature_dim
        self.backbone, self.head = encoder, nn.Linear(dim, num_classes)
        self.task_adapters = bool(adapter_dim)
        before = {id(p) for p in encoder.parameters() if p.requires_grad}   # what strategy and method chose
        if adapter_dim:   # peft/task_adapters.py: after the backbone's own layers (a live one: its TaskModel's)
            add_task_adapters(getattr(encoder, "model", encoder), len(task_classes), adapter_dim, activation,
                              target_modules=target_modules)
        self.vmap_safe = getattr(encoder, "vmap_safe", True)               # continual/core.py, per-example grads
        # The backbone's parameters that train on task 0 under `adapters` (methods.freeze_for_task): those
        # that trained when it was built, by name after the adapters wrapped its layers (a LoRA backbone:
        # its LoRA weights, not the whole pretrained model).
        self.shared_trainable = frozenset(f"backbone.{n}" for n, p in encoder.named_parameters() if id(p) in before)
        mask = torch.zeros(len(task_classes), num_classes, dtype=torch.bool)
        for t, cls in enumerate(task_classes):
            mask[t, cls] = True
        self.register_buffer("task_mask", mask)
        self.last_all_logits = None
        self.class_incremental, self.seen = False, len(task_classes)   # the driver sets both

    def _encode(self, batch: dict) -> torch.Tensor:
        if getattr(self.backbone, "takes_batch", False):                  # live: tokens or pixel_values
            return self.backbone(batch)
        return self.backbone(batch["inputs"])                               # (B, H)

    def features(self, batch: dict) -> torch.Tensor:
        if not self.task_adapters:
            return self._encode(batch)
        tasks = batch["task"].unique().tolist()
        if len(tasks) == 1:
            set_task(self.backbone, tasks[0])
            return self._encode(batch)
        out = None
        for t in tasks:                                                     # each example through its task's adapters
            sel = batch["task"] == t
            set_task(self.backbone, t)
            h = self._encode({k: v[sel] for k, v in batch.items()})
            out = h.new_empty((len(sel), *h.shape[1:])) if out is None else out
            out[sel] = h
        return out

    def all_logits(self, batch: dict) -> torch.Tensor:
        return self.head(self.features(batch))                              # (B, C_all)

    def forward(self, batch: dict) -> torch.Tensor:
        logits = self.all_logits(batch)
        self.last_all_logits = logits
        if self.class_incremental:                                          # every class seen so far
            allowed = self.task_mask[:self.seen].any(0).expand_as(logits)
        else:                                                               # only the task's own classes
            allowed = self.task_mask[batch["task"]]
        return logits.masked_fill(~allowed, -1e9)


class Pixels(nn.Module):
    """A pretrained image model's input made per batch: (B, 1, 28, 28) grayscale in [0, 1] -> bilinear to
    (B, 3, S, S) at `spec.size`, scaled as `spec` says (models/image_spec.py). The stored examples stay
    28x28: 15,000 images at 224 px would be 9 GB."""
    takes_batch = True

    def __init__(self, encoder: nn.Module, spec):
        super().__init__()
        self.encoder, self.spec, self.feature_dim = encoder, spec, encoder.feature_dim
        self.vmap_safe = getattr(encoder, "vmap_safe", True)

    @property
    def model(self) -> nn.Module:
        """The TaskModel inside (per-task adapters go into its backbone); a property, so it is not registered twice."""
        return self.encoder.model

    def forward(self, batch: dict) -> torch.Tensor:
        x = F.interpolate(batch["inputs"], size=(self.spec.size, self.spec.size), mode="bilinear",
                          align_corners=False).expand(-1, 3, -1, -1)
        return self.encoder({"pixel_values": self.spec.normalize(x)})


def is_live(cfg) -> bool:
    """Whether `run_sequence` trains a pretrained `model.name` live (not a factory, not cached text features)."""
    return ":" not in cfg.model.name and (cfg.continual.benchmark != "text" or not cfg.continual.cache_features)


def load_tasks(cfg, cache_dir=None):
    """([(train Examples, test Examples)] per task, task_classes, num_classes). Images: pixels (N, 1, 28, 28)
    in [0, 1]; text: cached frozen features (N, H), or token ids padded to data.max_length for a live model."""
    check_continual(cfg)                       # an unknown method fails here, before any data is read
    c, seed = cfg.continual, cfg.train.seed
    tasks, task_classes = [], []
    if c.benchmark == "split-fashion-mnist":
        frames = get_dataset("fashion-mnist").load()
        xtr, ytr = image_tensors(frames["train"], FASHION_MNIST_CLASSES)
        xte, yte = image_tensors(frames["test"], FASHION_MNIST_CLASSES)
        for t in range(5):
            cls = [2 * t, 2 * t + 1]
            parts = []
            for x, y, n in ((xtr, ytr, c.train_per_task), (xte, yte, c.test_per_task)):
                idx = np.flatnonzero(np.isin(y.numpy(), cls))
                idx = idx[subset_indices(len(idx), y[idx].tolist(), n, seed + t)[0]]
                parts.append(Examples(inputs=x[idx], labels=y[idx], task=torch.full((len(idx),), t)))
            tasks.append(tuple(parts))
            task_classes.append(cls)
        return tasks, task_classes, 10
    tok = load_tokenizer(cfg) if is_live(cfg) else None
    offset = 0
    for t, name in enumerate(c.text_tasks):
        parts = []
        for split, n in (("train", c.train_per_task), ("test", c.test_per_task)):
            if tok is None:
                feats, labels, names = text_task(name, split, n, seed + t, cfg.model.name, cfg.data.max_length,
                                                 cache_dir)
                cols = {"inputs": feats}
            else:
                texts, labels, names = text_subset(name, split, n, seed + t)
                cols = tokenized(tok, texts, cfg.data.max_length)
            y = torch.tensor([names.index(v) + offset for v in labels])
            parts.append(Examples(**cols, labels=y, task=torch.full((len(y),), t)))
        tasks.append(tuple(parts))
        task_classes.append(list(range(offset, offset + len(names))))
        offset += len(names)
    return tasks, task_classes, offset


def build_backbone(cfg, tasks):
    """(encoder, fit() callbacks, BatchNorm recalibration batches) for the model `is_live` and the data ask for."""
    c = cfg.continual
    if not is_live(cfg):
        if c.benchmark == "text":
            from ..zoo import mlp_trunk
            return mlp_trunk(in_features=tasks[0][0].columns["inputs"].shape[1]), [], 0
        return build_encoder(cfg), [], 0
    # The benchmark says what kind of model it needs; load_model refuses, naming both, a model of the other kind.
    want = "text" if c.benchmark == "text" else "image"
    live = live_encoder(dataclasses.replace(cfg, task="classification" if want == "text" else "image_classification"))
    encoder = live.encoder if want == "text" else Pixels(live.encoder, live.preprocessor)
    return encoder, live.callbacks, live.bn_recalibrate_batches


def run_sequence(cfg, method=None, loaded=None, log=None, phases: Optional[PhaseCheckpoints] = None) -> dict:
    """Fine-tune the tasks in order with `method` (a name of `methods.METHODS`, default `continual.method`,
    or a method object); R[i][j] = accuracy on task j after task i. The method's hooks run around each
    task's `fit()` and it is one of that fit's callbacks (methods.py's docstring).
    `log` (tracking.phases.PhasedLog): training rows per task, and each row of R, to metrics.jsonl.
    `phases` (training/phased.py): checkpoints inside each task and after it (the model, the method's
    state, R so far); a resumed sequence continues exactly where the newest valid one left off."""
    c = cfg.continual
    torch.manual_seed(cfg.train.seed)
    tasks, task_classes, num_classes = loaded or load_tasks(cfg)
    if method is None or isinstance(method, str):
        method = method_class(method or c.method).build(cfg, task_classes)
    encoder, plan_callbacks, recalibrate = build_backbone(cfg, tasks)
    model = ContinualModel(encoder, num_classes, task_classes, method.adapter_dim,
                           cfg.adapter.activation, cfg.adapter.target_modules)
    model.class_incremental = c.scenario == "class" and not method.needs_task_id
    bs = eval_batch_size(cfg.train)    # small batches: a CNN at 64 px evaluates 3x faster at 32 than at 512
    baseline = [accuracy(model, test, bs) for _, test in tasks]          # b_j: the initial model, for FWT
    saved = phases.restore(model) if phases is not None else {}     # tasks already done: weights, R, state
    R, elapsed, steps = saved.get("R", []), saved.get("seconds", 0.0), phases.offset() if phases else 0
    if saved and hasattr(method, "load_state_dict"):
        method.load_state_dict(saved["method"])
    if log is not None:
        log.offset = steps
    t0 = time.perf_counter()
    for t in range(len(R), len(tasks)):
        train = tasks[t][0]
        _hook(method, "on_task_start", model, t)
        model.seen = t + 1
        phase = f"{method.name} task {t}"
        state = fit_examples(model, train, cfg, callbacks=[method, *plan_callbacks,
                                                           *(log.callbacks(phase) if log else [])],
                             seed=cfg.train.seed + t, checkpoints=phases.phase_dir(t) if phases else None,
                             resume_from=phases.resume_from(t) if phases else None)
        _hook(method, "on_task_end", model, train, t)
        if recalibrate:      # BatchNorm statistics at the current weights, from this task's data (frozen_mode.py)
            recalibrate_bn(model, train, stack_collate, torch.device("cpu"), cfg.train.batch_size, recalibrate)
        R.append([accuracy(model, test, bs) for _, test in tasks])
        steps += state.step
        if log:
            log.log({"split": "eval", "phase": phase, "method": method.name, "after_task": t,
                     **{f"acc/task{j}": a for j, a in enumerate(R[-1])}})
        if phases is not None:
            phases.finish(t, steps, {"R": R, "seconds": elapsed + time.perf_counter() - t0,
                                     "method": method.state_dict() if hasattr(method, "state_dict") else {}}, model)
    R = np.array(R)
    return {"method": method.name, "scenario": "class" if model.class_incremental else "task",
            "R": R.round(4).tolist(), "acc": average_accuracy(R), "bwt": backward_transfer(R),
            "fwt": forward_transfer(R, baseline), "seconds": round(elapsed + time.perf_counter() - t0, 1),
            "sizes": [[len(a), len(b)] for a, b in tasks]}


def _hook(method, name: str, *args) -> None:
    """Task hooks are optional, like fit()'s callback methods."""
    fn = getattr(method, name, None)
    if fn is not None:
        fn(*args)
