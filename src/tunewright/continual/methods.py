"""The continual methods as whole objects: each owns its state across the sequence of tasks.

A method is a plain object that declares what it is and has optional hooks; the driver
(`driver.run_sequence`) calls them and never asks a method's name:

    method = METHODS[cfg.continual.method].build(cfg, task_classes)
    for t, task in enumerate(tasks):
        method.on_task_start(model, t)              # LwF: snapshot the model; adapters: freeze
        fit(model, task, callbacks=[method, ...])   # on_loss / on_batch_start inside the task
        method.on_task_end(model, task_train, t)    # EWC: Fisher and anchor

Declarations: `name` (the `continual.method` value; `METHODS` is built from them),
`needs_task_id` (the model keeps the task id even in the class-incremental scenario) and
`adapter_dim` (per-task adapters inside the backbone, or None). The formulas are in `core.py`,
whose pure functions these objects wrap.
"""
from __future__ import annotations

import copy
from typing import Callable, Optional, Protocol

import torch

from ..config import declared
from ..data.examples import stack_collate
from ..peft.task_adapters import train_only_task
from ..training.fit_examples import cross_entropy
from .core import Reservoir, diagonal_fisher, ewc_penalty, lwf_loss, online_fisher


class ContinualMethod(Protocol):
    name: str
    needs_task_id: bool
    adapter_dim: Optional[int]

    @classmethod
    def build(cls, cfg, task_classes: list[list[int]]) -> "ContinualMethod": ...


class Naive:
    """Plain fine-tuning on each task in turn: the baseline that forgets."""
    name, needs_task_id, adapter_dim = "naive", False, None

    @classmethod
    def build(cls, cfg, task_classes):
        return cls()


def fisher_batches(train, batch_size: int, n_batches: int, seed: int) -> list[dict]:
    """The first `n_batches` batches of one seeded shuffle of `train`: the examples the Fisher is estimated on."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).split(batch_size)[:n_batches]
    return [stack_collate([train[int(i)] for i in idx]) for idx in order]


class EWC:
    """Elastic weight consolidation (Kirkpatrick et al. 2017, PNAS):

        loss + lambda/2 * sum_k sum_i F_k,i (w_i - w*_k,i)^2

    one anchor (w*_k, F_k) per finished task k; F_k the empirical diagonal Fisher (per-example
    squared gradients, `core.diagonal_fisher`) over `fisher_batches` batches of task k, taken at w*_k."""
    name, needs_task_id, adapter_dim = "ewc", False, None

    def __init__(self, lam: float, n_batches: int = 20, batch_size: int = 32, seed: int = 0,
                 loss_fn: Callable = cross_entropy):
        self.lam, self.n_batches, self.batch_size, self.seed, self.loss_fn = lam, n_batches, batch_size, seed, loss_fn
        self.anchors: list[tuple[dict, dict]] = []         # [(anchor weights w*, Fisher F), ...]

    @classmethod
    def build(cls, cfg, task_classes):
        c = cfg.continual
        return cls(c.ewc_lambda, c.fisher_batches, cfg.train.batch_size, cfg.train.seed)

    def on_loss(self, ctx, loss, batch):
        if not self.anchors:
            return loss
        params = dict(ctx.model.named_parameters())
        return loss + self.lam / 2 * sum(ewc_penalty(params, a, f) for a, f in self.anchors)

    def on_task_end(self, model, train, t: int) -> None:
        fisher = diagonal_fisher(model, fisher_batches(train, self.batch_size, self.n_batches, self.seed + t),
                                 self.loss_fn)
        anchor = {n: p.detach().clone() for n, p in model.named_parameters() if n in fisher}
        self.consolidate(anchor, fisher)

    def consolidate(self, anchor: dict, fisher: dict) -> None:
        self.anchors.append((anchor, fisher))

    def state_dict(self) -> dict:
        """The anchors and Fishers of the finished tasks: a resumed sequence needs them (tensors)."""
        return {"anchors": [{"weights": a, "fisher": f} for a, f in self.anchors]}

    def load_state_dict(self, d: dict) -> None:
        self.anchors = [(x["weights"], x["fisher"]) for x in d["anchors"]]


class OnlineEWC(EWC):
    """Online EWC (Schwarz et al. 2018, "Progress & Compress"): one anchor, the latest weights, with
    the running Fisher F <- gamma * F_old + F_new (`core.online_fisher`); the penalty is EWC's."""
    name = "online_ewc"

    def __init__(self, lam: float, gamma: float, **kw):
        super().__init__(lam, **kw)
        self.gamma = gamma

    @classmethod
    def build(cls, cfg, task_classes):
        c = cfg.continual
        return cls(c.ewc_lambda, c.ewc_gamma, n_batches=c.fisher_batches, batch_size=cfg.train.batch_size,
                   seed=cfg.train.seed)

    def consolidate(self, anchor: dict, fisher: dict) -> None:
        if self.anchors:
            fisher = online_fisher(self.anchors[0][1], fisher, self.gamma)
        self.anchors[:] = [(anchor, fisher)]


class Replay:
    """Experience replay (Chaudhry et al. 2019, "On Tiny Episodic Memories"): `k` stored examples are
    appended to every training batch, then the batch's own examples are offered to the reservoir
    (first epoch of a task only, so that each example of the stream is offered once). The buffer
    lives across tasks."""
    name, needs_task_id, adapter_dim = "replay", False, None

    def __init__(self, buffer: Reservoir, k: int, collate: Callable = stack_collate):
        self.buffer, self.k, self.collate = buffer, k, collate

    @classmethod
    def build(cls, cfg, task_classes):
        return cls(Reservoir(cfg.continual.buffer_size, cfg.train.seed), cfg.continual.replay_batch)

    def on_batch_start(self, ctx, batch: dict) -> None:
        n = len(batch["labels"])
        new = [{k: v[i].cpu() for k, v in batch.items()} for i in range(n)]
        old = self.buffer.sample(self.k)
        if old:
            mixed = self.collate(old)
            for key in batch:                               # (B, ...) -> (B + k, ...)
                batch[key] = torch.cat([batch[key], mixed[key].to(batch[key].device)])
        if ctx.state.epoch == 0:
            for item in new:
                self.buffer.add(item)

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        self.buffer.load_state_dict(d["buffer"])


class LwF:
    """Learning without Forgetting (Li & Hoiem 2016): loss + alpha * T^2 KL(softmax(z_old/T) || softmax(z/T))
    on the old tasks' classes, z_old from a frozen copy of the model taken when the task starts."""
    name, needs_task_id, adapter_dim = "lwf", False, None

    def __init__(self, task_classes: list[list[int]], alpha: float, temperature: float):
        self.task_classes, self.alpha, self.t = task_classes, alpha, temperature
        self.old, self.cls = None, torch.tensor([], dtype=torch.long)

    @classmethod
    def build(cls, cfg, task_classes):
        return cls(task_classes, cfg.continual.lwf_alpha, cfg.continual.lwf_temperature)

    def on_task_start(self, model, t: int) -> None:
        if t == 0:
            return
        self.old = copy.deepcopy(model).eval()
        for p in self.old.parameters():
            p.requires_grad_(False)
        self.cls = torch.tensor([k for cls in self.task_classes[:t] for k in cls])

    def on_loss(self, ctx, loss, batch):
        if self.old is None or len(self.cls) == 0:
            return loss
        with torch.no_grad():
            old = self.old.all_logits(batch)[:, self.cls]          # (B, C_old)
        new = ctx.model.last_all_logits[:, self.cls]                # this step's forward, unmasked
        return loss + self.alpha * lwf_loss(new, old, self.t)


class TaskAdapters:
    """One bottleneck adapter per task inside the backbone (peft/task_adapters.py; Rebuffi et al. 2017,
    Houlsby et al. 2019): the backbone trains on task 0 only, then task t trains only its own adapter
    and the head, so earlier tasks cannot be forgotten. It routes each example by its task id."""
    name, needs_task_id = "adapters", True

    def __init__(self, adapter_dim: int):
        self.adapter_dim = adapter_dim

    @classmethod
    def build(cls, cfg, task_classes):
        return cls(cfg.continual.adapter_dim)

    def on_task_start(self, model, t: int) -> None:
        freeze_for_task(model, t)


def freeze_for_task(model, t: int) -> list[str]:
    """Task t trains its own adapter and the head (whose rows of other tasks' classes get exactly zero
    gradient, being masked); the shared backbone (`driver.ContinualModel.backbone`) trains on task 0
    only, and there only the parameters that trained when it was built (`shared_trainable`: all of a
    plain network, the LoRA weights of a LoRA backbone). Every other task's adapter is frozen. Returns
    the names that train."""
    def also(n: str) -> bool:
        return n.startswith("head.") or (t == 0 and n in model.shared_trainable)
    return train_only_task(model, t, also)


METHODS: dict[str, type] = {m.name: m for m in (Naive, EWC, OnlineEWC, Replay, LwF, TaskAdapters)}
declared.declare("continual.method", METHODS)   # config checks `continual.method:` against these names when it loads


def method_class(name: str) -> type:
    """The class declared under `name`; a ConfigError names the key, the value and the choices."""
    declared.check("continual.method", name)
    return METHODS[name]


def check_continual(cfg) -> None:
    """The check of `continual.method` that `load_tasks` makes before any data is read (config sits below
    this registry, so it cannot make it itself)."""
    method_class(cfg.continual.method)
