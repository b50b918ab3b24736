"""The multi-task driver: tasks' examples concatenated, one `fit()`, per-task heads, and the
negative-transfer report (each task's metric multi-task vs single-task).

Example (configs/multitask_text.yaml): Reuters-R8, 20 Newsgroups and drug reviews on MiniLM. On
this 2-core CPU the MiniLM encoder is frozen and its sentence features computed once
(`multitask.cache_features`); what is shared and trained is the trunk `tunewright.zoo:mlp_trunk`.
With `cache_features: false` the shared encoder is the live model, with `strategy` and `method`
(any PEFT method, e.g. lora) applied as `tunewright train` applies them.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config.schema import eval_batch_size
from ..data.examples import Examples
from ..data.splits import subset_indices
from ..live_encoder import live_encoder
from ..evaluate.predict import accuracy
from ..models.frozen_text import text_subset, text_task, tokenized
from ..training.fit_examples import fit_examples
from ..training.phased import PhaseCheckpoints
from ..zoo import mlp_trunk
from ..peft.task_adapters import add_task_adapters, set_task
from .core import multitask_batches, uncertainty_weighted


class MultiTaskModel(nn.Module):
    """Shared backbone (optionally with one bottleneck adapter per task inside it) -> per-task head.
    Every batch holds one task (`batch["task"]`); its adapters are the active ones for that batch,
    so the other tasks' adapters get no gradient from it."""

    def __init__(self, encoder: nn.Module, num_labels: list[int], adapter_dim: Optional[int] = None,
                 activation: str = "relu", kind: str = "houlsby", target_modules=("auto",)):
        super().__init__()
        dim = encoder.feature_dim
        self.backbone = encoder
        self.heads = nn.ModuleList([nn.Linear(dim, k) for k in num_labels])
        self.task_adapters = bool(adapter_dim)
        if adapter_dim:   # a live encoder's adapters go into its TaskModel's backbone (attention/FFN outputs)
            add_task_adapters(getattr(encoder, "model", encoder), len(num_labels), adapter_dim, activation, kind,
                              target_modules)
        self.log_vars = nn.Parameter(torch.zeros(len(num_labels)))   # s_i of uncertainty weighting

    def forward(self, batch: dict) -> torch.Tensor:
        t = int(batch["task"][0])
        if self.task_adapters:
            set_task(self.backbone, t)
        live = getattr(self.backbone, "takes_batch", False)
        h = self.backbone(batch) if live else self.backbone(batch["inputs"])   # (B, H)
        return self.heads[t](h)                                       # (B, C_t)


def load_task_data(cfg, cache_dir=None):
    """[(name, train Examples, test Examples, num_labels)] for `multitask.tasks`: frozen features
    (`multitask.cache_features`), or token ids padded to `data.max_length` for a live backbone."""
    from ..models import load_tokenizer

    mt, out = cfg.multitask, []
    tok = None if mt.cache_features else load_tokenizer(cfg)
    for t, name in enumerate(mt.tasks):
        parts = []
        for split, n in (("train", mt.train_subset), ("test", mt.test_subset)):
            if tok is None:
                feats, labels, names = text_task(name, split, n, cfg.train.seed + t, cfg.model.name,
                                                 cfg.data.max_length, cache_dir)
                cols = {"inputs": feats}
            else:
                texts, labels, names = text_subset(name, split, n, cfg.train.seed + t)
                cols = tokenized(tok, texts, cfg.data.max_length)
            y = torch.tensor([names.index(v) for v in labels])
            parts.append(Examples(**cols, labels=y, task=torch.full((len(y),), t)))
        if mt.task_train_sizes:
            labels = parts[0].columns["labels"].numpy()
            parts[0] = parts[0].subset(subset_indices(len(labels), labels.tolist(), int(mt.task_train_sizes[t]),
                                                      cfg.train.seed + t)[0])
        out.append((name, parts[0], parts[1], len(names)))
    return out


def train_multitask(cfg, data, tasks: Optional[list[int]] = None, sampling: Optional[str] = None,
                    weighting: Optional[str] = None, task_adapters: Optional[bool] = None, log=None,
                    checkpoints=None, resume_from=None) -> dict:
    """Train the tasks in `tasks` (default all) together; {task name: test accuracy, "seconds", "steps"}.
    `log` (tracking.phases.PhasedLog): the training rows and the test accuracies to metrics.jsonl.
    `checkpoints` / `resume_from`: fit_examples' resumable checkpoints of this one training."""
    mt = cfg.multitask
    sampling, weighting = sampling or mt.sampling, weighting or mt.weighting
    task_adapters = mt.task_adapters if task_adapters is None else task_adapters
    tasks = list(range(len(data))) if tasks is None else tasks
    torch.manual_seed(cfg.train.seed)
    if "inputs" in data[0][1].columns:                           # cached features: a trainable trunk on top
        encoder, callbacks = mlp_trunk(in_features=data[0][1].columns["inputs"].shape[1]), []
    else:
        live = live_encoder(cfg)
        encoder, callbacks = live.encoder, live.callbacks
    model = MultiTaskModel(encoder, [d[3] for d in data], mt.adapter_dim if task_adapters else None,
                           cfg.adapter.activation, cfg.adapter.kind, cfg.adapter.target_modules)
    train = [data[t][1] for t in tasks]
    sizes = [len(d) for d in train]
    offsets = np.cumsum([0] + sizes[:-1]).tolist()
    joined = Examples(**{k: torch.cat([d.columns[k] for d in train]) for k in train[0].columns})
    weights = torch.tensor([float(w) for w in mt.loss_weights] or [1.0] * len(data))

    def loss_fn(logits, batch):
        t = int(batch["task"][0])
        loss = F.cross_entropy(logits, batch["labels"])
        if weighting == "uncertainty":
            return uncertainty_weighted(loss.view(1), model.log_vars[t].view(1))
        return weights[t] * loss

    t0 = time.perf_counter()
    phase = "+".join(data[t][0] for t in tasks)
    state = fit_examples(model, joined, cfg, loss_fn=loss_fn,
                         callbacks=callbacks + (log.callbacks(phase) if log else []),
                         epoch_batches=multitask_batches(offsets, sizes, sampling, mt.temperature),
                         checkpoints=checkpoints, resume_from=resume_from)
    result = {data[t][0]: accuracy(model, data[t][2], eval_batch_size(cfg.train)) for t in tasks}
    if log:
        log.log({"split": "test", "phase": phase, **{f"acc/{k}": v for k, v in result.items()}})
    result["seconds"], result["steps"] = round(time.perf_counter() - t0, 1), state.step
    if weighting == "uncertainty":
        result["log_vars"] = [round(float(v), 3) for v in model.log_vars.detach()]
    return result


def negative_transfer(cfg, data, log=None, phases: Optional[PhaseCheckpoints] = None) -> list[dict]:
    """Per task: single-task accuracy, multi-task accuracy (the config's sampling/weighting) and the
    difference (negative: the other tasks hurt this one). The joint run is phase 0, task t alone phase
    t + 1; with `phases` each is checkpointed and a resumed report continues where it stopped."""
    runs = run_phases(cfg, data, [None] + [[t] for t in range(len(data))], log, phases)
    multi = runs[0]
    return [{"task": name, "single": runs[t + 1][name], "multi": multi[name], "delta": multi[name] - runs[t + 1][name]}
            for t, (name, *_rest) in enumerate(data)]


def run_phases(cfg, data, task_sets: list, log=None, phases: Optional[PhaseCheckpoints] = None) -> list[dict]:
    """`train_multitask` on each task set in turn (None: all tasks); the results of finished phases come
    back from their checkpoints instead of training again."""
    results = phases.restore().get("results", []) if phases is not None else []
    steps = phases.offset() if phases is not None else 0
    if log is not None:
        log.offset = steps
    for i in range(len(results), len(task_sets)):
        r = train_multitask(cfg, data, tasks=task_sets[i], log=log,
                            checkpoints=phases.phase_dir(i) if phases else None,
                            resume_from=phases.resume_from(i) if phases else None)
        results.append(r)
        steps += r["steps"]
        if phases is not None:
            phases.finish(i, steps, {"results": results})
    return results
