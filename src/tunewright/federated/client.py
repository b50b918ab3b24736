"""The client side: tunewright's own `fit()` on one client's rows, wrapped as a Flower ClientApp.

    local_fit(runtime, rows, ...)     the function: fresh optimizer, `local_steps` steps (or epochs) of fit(),
                                      with FedProx's proximal term when the server sends `proximal-mu`
    handle_train / handle_evaluate    Message in -> Message out (Flower's Message API)
    make_client_app(config_text)      the ClientApp, with Flower's DP clipping mod and SecAgg+ mod when the server
                                      asks for them (secagg.py)

A process builds its model and data once (`runtime`) and serves any client id from it: what a
client keeps between rounds (its personalized head or adapter) lives in Flower's per-node
`context.state`, not in the process, so Ray may route any node to any actor.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Subset

from .arrays import LOCAL, LOCAL_ADAPTER, from_record, get_tensors, kept_names, set_tensors, to_record, \
    travelling_names
from .partition import local_split, partition

PERSONAL = "tunewright-personal"     # the ArrayRecord in context.state that holds a client's own tensors


def parse_config(text: str):
    """A Config from YAML text (what travels in Flower's run_config) or from a YAML file path."""
    import yaml
    from pathlib import Path
    from ..config.load import config_from_dict, load_config
    if "\n" not in text and text.endswith((".yaml", ".yml")) and Path(text).is_file():
        return load_config(text)
    return config_from_dict(yaml.safe_load(text))


def add_local_adapter(model, cfg) -> None:
    """personalize: adapter: a second LoRA (named `local`) beside the shared one; both are active and train."""
    from ..errors import ConfigError
    from ..peft.base import is_peft
    if cfg.method != "lora" or not is_peft(model):
        raise ConfigError(f"federated.personalize: adapter needs method: lora on a Hugging Face model "
                          f"(got method: {cfg.method!r}); use personalize: head otherwise.")
    shared = cfg.peft.adapter_name
    model.backbone.add_adapter(LOCAL_ADAPTER, dataclasses.replace(model.backbone.peft_config[shared]))
    model.backbone.base_model.set_adapter([shared, LOCAL_ADAPTER])   # LoraModel: several active adapters
    for n, p in model.named_parameters():      # set_adapter sets requires_grad on the adapters; the head too
        if n.startswith("head."):
            p.requires_grad_(bool(cfg.peft.train_head))


@dataclass
class Runtime:
    """One process's model, data and partitions (the same on every process, from the same seed)."""
    cfg: object
    model: torch.nn.Module
    bundle: object
    preprocessor: object
    plans: list
    parts: list                      # row indices of each client's partition of the train split
    names: list                      # tensors that travel
    kept: list                       # tensors a client keeps as its own
    initial_kept: dict               # their values before any training (a client's first round starts here)
    loss_fn: object
    precision: object

    def client_rows(self, pid: int) -> tuple[np.ndarray, np.ndarray]:
        f = self.cfg.federated
        return local_split(self.parts[pid], f.local_test_fraction, self.cfg.train.seed + pid)


_RUNTIMES: dict[str, Runtime] = {}


def build_runtime(cfg) -> Runtime:
    from ..peft import apply_method
    from ..run import prepare
    from ..strategies import plan_strategy
    from ..training.losses import loss_for
    from ..training.precision import resolve_device, resolve_precision

    raw, model, preprocessor, bundle = prepare(cfg)
    plans = [plan_strategy(model, cfg)]
    plans.append(apply_method(model, cfg, plans[0]))
    f = cfg.federated
    if f.personalize == "adapter":
        add_local_adapter(model, cfg)
    device = resolve_device(cfg.train.device)
    model.to(device)
    labels = [int(t) for t in bundle.targets["train"]]
    parts = partition(labels, f.num_clients, f.partitioner, seed=cfg.train.seed, alpha=f.alpha,
                      shards_per_client=f.shards_per_client, min_partition_size=f.min_partition_size)
    kept = kept_names(model, f.personalize)
    return Runtime(cfg, model, bundle, preprocessor, plans, parts, travelling_names(model, f.personalize), kept,
                   get_tensors(model, kept), loss_for(cfg.task, cfg.train.label_smoothing),
                   resolve_precision(cfg.train.precision, device, cfg.train.cudnn_attention))


def runtime(config_text: str) -> Runtime:
    key = hashlib.sha1(config_text.encode()).hexdigest()
    if key not in _RUNTIMES:
        _RUNTIMES.clear()            # one model per process
        _RUNTIMES[key] = build_runtime(parse_config(config_text))
    return _RUNTIMES[key]


class ProximalTerm:
    """FedProx (Li et al. 2020): loss + mu/2 * sum_i ||w_i - w_i^global||^2 over the tensors that travel."""

    def __init__(self, model: torch.nn.Module, global_tensors: dict[str, torch.Tensor], mu: float):
        params = dict(model.named_parameters())
        self.pairs = [(params[n], g.to(params[n].device)) for n, g in global_tensors.items()]
        self.mu = mu

    def on_loss(self, ctx, loss, batch=None):
        return loss + 0.5 * self.mu * sum(((p - g) ** 2).sum() for p, g in self.pairs)


class LossMeter:
    """Mean training loss of a local fit (the loss the optimizer saw, proximal term included)."""

    def __init__(self):
        self.total, self.n = 0.0, 0

    def on_loss(self, ctx, loss, batch=None):
        self.total, self.n = self.total + float(loss.detach()), self.n + 1

    @property
    def mean(self) -> float:
        return self.total / max(self.n, 1)


def local_fit(rt: Runtime, rows: np.ndarray, seed: int, proximal_mu: float = 0.0,
              global_tensors: Optional[dict] = None) -> tuple[int, float]:
    """Train rt.model on `rows` of the train split for `local_steps` steps (or `local_epochs` epochs) with
    a fresh optimizer and a constant LR, as `train` would (its optimizer, param groups and method LR).
    Returns (optimizer steps, mean loss)."""
    from ..run import build_optimization
    from ..training.loop import fit
    from ..training.rng import seed_everything

    f, t = rt.cfg.federated, rt.cfg.train
    local = dataclasses.replace(t, max_steps=f.local_steps, epochs=f.local_epochs, seed=seed, schedule="constant",
                                warmup_ratio=0.0, eval_every_steps=None, grad_accum=1, progress="none")
    cfg = dataclasses.replace(rt.cfg, train=local, data=dataclasses.replace(rt.cfg.data, bucket=False))
    optimizer, scheduler, _ = build_optimization(rt.model, cfg, rt.plans, len(rows))
    seed_everything(seed)    # dropout masks depend on (seed, round, client) only: a restarted server replays them
    meter = LossMeter()
    callbacks = [cb for p in rt.plans for cb in p.callbacks]     # a strategy's own (gradual unfreezing, L2-SP)
    if proximal_mu:
        callbacks.append(ProximalTerm(rt.model, global_tensors, proximal_mu))
    callbacks.append(meter)
    state = fit(rt.model, Subset(rt.bundle.train, rows.tolist()), rt.bundle.collate, optimizer, scheduler, cfg,
                loss_fn=rt.loss_fn, precision=rt.precision, callbacks=callbacks)
    return state.step, meter.mean


def evaluate_rows(rt: Runtime, rows: np.ndarray) -> dict:
    from ..evaluate import evaluate_dataset
    t = rt.cfg.train
    return evaluate_dataset(rt.model, Subset(rt.bundle.train, rows.tolist()), rt.bundle.collate, rt.cfg.task,
                            rt.bundle.num_labels, t.eval_batch_size or 2 * t.batch_size, rt.precision)


def _personal(rt: Runtime, context) -> dict:
    rec = context.state.array_records.get(PERSONAL) if rt.kept else None
    return from_record(rec) if rec is not None else rt.initial_kept


def handle_train(msg, context, config_text: str):
    """Load the global tensors (keeping this client's own), train locally, reply with the tensors that travel."""
    from flwr.app import Message, MetricRecord, RecordDict
    rt = runtime(config_text)
    pid = int(context.node_config["partition-id"])
    config = msg.content["config"]
    rnd = int(config["server-round"])
    incoming = from_record(msg.content["arrays"])
    set_tensors(rt.model, _personal(rt, context))
    set_tensors(rt.model, incoming, skip=LOCAL[rt.cfg.federated.personalize][1])
    train_rows, _ = rt.client_rows(pid)
    mu = float(config.get("proximal-mu", 0.0))     # FedProx: Flower sends mu; the term is ours (ProximalTerm)
    steps, loss = local_fit(rt, train_rows, rt.cfg.train.seed + 1000 * rnd + pid, mu, incoming)
    if rt.kept:
        context.state.array_records[PERSONAL] = to_record(get_tensors(rt.model, rt.kept))
    out = get_tensors(rt.model, list(incoming))    # the keys and order the server sent (fixedclipping_mod checks)
    metrics = MetricRecord({"num-examples": int(len(train_rows)), "uniform-weight": 1, "train-loss": float(loss),
                            "local-steps": int(steps), "partition-id": pid})
    return Message(RecordDict({"arrays": to_record(out), "metrics": metrics}), reply_to=msg)


@torch.no_grad()
def handle_evaluate(msg, context, config_text: str):
    """This client's test slice under the global model, and under its personalized one when it has one."""
    from flwr.app import Message, MetricRecord, RecordDict
    rt = runtime(config_text)
    pid = int(context.node_config["partition-id"])
    _, test_rows = rt.client_rows(pid)
    set_tensors(rt.model, rt.initial_kept)          # a local adapter at init adds nothing (LoRA B = 0)
    set_tensors(rt.model, from_record(msg.content["arrays"]))
    metrics = {"num-examples": int(len(test_rows)), "partition-id": pid}
    if len(test_rows):
        # accuracy, and the mean cross-entropy (it tells two models apart on a slice of a few rows)
        m = evaluate_rows(rt, test_rows)
        metrics["accuracy"], metrics["test-loss"] = float(m.get("accuracy", "nan")), float(m.get("loss", "nan"))
        if rt.kept:
            set_tensors(rt.model, _personal(rt, context))
            m = evaluate_rows(rt, test_rows)
            metrics["accuracy-personal"] = float(m.get("accuracy", "nan"))
            metrics["test-loss-personal"] = float(m.get("loss", "nan"))
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def make_client_app(config_text: Optional[str] = None):
    """The ClientApp. `config_text` (simulation) or the run config's `config` key (deployment: `flwr run`)."""
    from flwr.clientapp import ClientApp
    from .privacy import clip_when_asked
    from .secagg import handle_secagg_train, is_secagg, secagg_when_asked

    app = ClientApp(mods=[clip_when_asked, secagg_when_asked])

    def text(context) -> str:
        return config_text or str(context.run_config["config"])

    @app.train()
    def train(msg, context):
        if is_secagg(msg):          # federated.secagg: the legacy fit that Flower's secaggplus_mod wraps
            return handle_secagg_train(msg, context, text(context))
        return handle_train(msg, context, text(context))

    @app.evaluate()
    def evaluate(msg, context):
        return handle_evaluate(msg, context, text(context))

    return app
