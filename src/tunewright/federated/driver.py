"""The round driver: one readable loop over Flower's strategy, and `federate(config)`.

    for round r in start..rounds:                        (r continues after a restart: state.py)
        messages = strategy.configure_train(r, global)    Flower samples clients_per_round clients
        replies  = grid.send_and_receive(messages)        each runs client.handle_train (tunewright's fit)
        kept, rejected = screen(replies)                   drop-outs, NaN/Inf, norm > max_update_norm
        global   = strategy.aggregate_train(r, kept)       Flower's FedAvg/FedProx/FedAdam/FedYogi (+DP noise)
        clients  = grid.send_and_receive(configure_evaluate)   every client scores its own test slice
        row      = global test metrics, per-client metrics, bytes, epsilon -> metrics.jsonl, trackers
        save_state(r, global, strategy)                     atomic; a restarted server resumes at r + 1

Why not `Strategy.start()`: it always counts rounds from 1 (FedAdam's bias correction uses the round),
and it has no hook after aggregation to save the state; the loop above is the same calls in the same order.
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import TunewrightError
from .arrays import from_record, get_tensors, model_bytes, set_tensors, to_record
from .server import build_strategy, screen
from .state import load_state, restore_strategy, save_state

MB = 1e6


def array_bytes(msg) -> int:
    """Bytes of the tensors a message carries (its configs and metrics are a few bytes more)."""
    return sum(r.count_bytes() for r in msg.content.array_records.values())


def _client_rows(train_replies, eval_replies) -> list[dict]:
    """One dict per client that answered this round: its training and evaluation metrics."""
    clients: dict[int, dict] = {}
    for msg, keys in [(m, ("train-loss", "local-steps", "num-examples")) for m in train_replies] + \
                     [(m, ("accuracy", "accuracy-personal", "test-loss", "test-loss-personal")) for m in eval_replies]:
        if msg.has_error():
            continue
        m = next(iter(msg.content.metric_records.values()))
        row = clients.setdefault(int(m["partition-id"]), {"client": int(m["partition-id"])})
        for k in keys:
            if k in m:
                row[k.replace("-", "_") if k != "num-examples" else "train_rows"] = m[k]
    return [clients[k] for k in sorted(clients)]


def _mean(rows: list[dict], key: str) -> Optional[float]:
    vals = [r[key] for r in rows if key in r and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else None


def run_round(grid, strategy, rnd: int, arrays, opts, evaluate_global) -> tuple[object, dict]:
    """One round: train on the sampled clients, screen, aggregate, evaluate. (new global ArrayRecord, row)."""
    from flwr.app import ConfigRecord
    t0 = time.perf_counter()
    global_np = {k: a.numpy() for k, a in arrays.items()}
    messages = list(strategy.configure_train(rnd, arrays, ConfigRecord(), grid))
    replies = list(grid.send_and_receive(messages, timeout=opts.round_timeout))
    kept, rejected = screen(replies, global_np, opts.max_update_norm)
    for who, why in rejected:
        print(f"round {rnd}: client {who} rejected: {why}", file=sys.stderr, flush=True)
    aggregated = None
    if len(kept) >= opts.min_clients:
        aggregated, _ = strategy.aggregate_train(rnd, kept)
    else:
        print(f"round {rnd}: {len(kept)} valid updates < federated.min_clients {opts.min_clients}; the global "
              f"model stays as it was", file=sys.stderr, flush=True)
    new = aggregated if aggregated is not None else arrays
    eval_messages = list(strategy.configure_evaluate(rnd, new, ConfigRecord(), grid))
    eval_replies = list(grid.send_and_receive(eval_messages, timeout=opts.round_timeout))
    clients = _client_rows(kept, eval_replies)
    row = {"round": rnd, "split": "federated", **{f"test_{k}": v for k, v in evaluate_global(new).items()},
           "clients_accuracy": _mean(clients, "accuracy"), "clients_accuracy_personal": _mean(clients,
                                                                                               "accuracy_personal"),
           "clients_sampled": len(messages), "clients_aggregated": len(kept) if aggregated is not None else 0,
           "rejected": [{"client": w, "reason": r} for w, r in rejected],
           "bytes_sent": sum(array_bytes(m) for m in messages + eval_messages),
           "bytes_received": sum(array_bytes(m) for m in replies if not m.has_error()),
           "round_seconds": round(time.perf_counter() - t0, 3), "clients": clients}
    return new, row


def _global_evaluator(rt, names, subset: Optional[int]):
    """(ArrayRecord -> test metrics of the global model) on a stratified subset of the test split."""
    from ..evaluate import evaluate_dataset
    from ..data.splits import subset_indices
    from torch.utils.data import Subset
    b, t = rt.bundle, rt.cfg.train
    labels = [int(x) for x in b.targets["test"]]
    rows = subset_indices(len(labels), labels, subset, t.seed)[0]
    ds = Subset(b.test, list(rows))

    def evaluate(arrays) -> dict:
        set_tensors(rt.model, rt.initial_kept)     # a local adapter at init adds nothing
        set_tensors(rt.model, from_record(arrays))
        m = evaluate_dataset(rt.model, ds, b.collate, rt.cfg.task, b.num_labels, t.eval_batch_size or 2 * t.batch_size,
                             rt.precision)
        return {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}
    return evaluate


def start_run(cfg, *, resume: bool = False, overwrite: bool = False):
    """The run folder (config.yaml, partitions.json, printed), the runtime; refuses to overwrite by accident.
    Returns (runtime, run folder)."""
    import shutil
    from ..config import dump_yaml
    from .client import build_runtime
    from .partition import describe, skew

    f = cfg.federated
    run_dir = Path(cfg.output_dir) / cfg.run_name
    state_dir = run_dir / "server_state"
    if (run_dir / "summary.json").exists() or (state_dir / "latest.json").exists():
        if not resume and not overwrite:
            raise TunewrightError(f"{run_dir} already exists. Use --resume to continue it, --overwrite to start "
                                  f"over, or another run_name.")
    rt = build_runtime(cfg)
    if overwrite and not resume and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    labels = [int(t) for t in rt.bundle.targets["train"]]
    parts = describe(labels, rt.parts, rt.bundle.label_names)
    hist = [list(p["labels"].values()) for p in parts]
    (run_dir / "partitions.json").write_text(json.dumps({"partitioner": f.partitioner, "alpha": f.alpha,
                                                         "skew": skew(hist), "clients": parts}, indent=1))
    print(f"{f.num_clients} clients, partitioner {f.partitioner}"
          + (f" (alpha {f.alpha:g})" if f.partitioner == "dirichlet" else "") + f", label skew {skew(hist):.3f}:")
    for p in parts:
        print(f"  client {p['client']:>3}: {p['rows']:>5} rows  " + " ".join(f"{k}:{v}" for k, v in p["labels"].items()))
    return rt, run_dir


def print_round(row: dict, rounds: int, full_bytes: int, delta: float) -> None:
    """The progress line of one round."""
    acc = row.get("test_accuracy")
    print(f"round {row['round']}/{rounds}: test accuracy {acc if acc is None else f'{acc:.4f}'}"
          + (f", clients {row['clients_accuracy']:.4f}" if row.get("clients_accuracy") is not None else "")
          + (f" (personalized {row['clients_accuracy_personal']:.4f})"
             if row.get("clients_accuracy_personal") is not None else "")
          + f" | {row['clients_aggregated']}/{row['clients_sampled']} clients aggregated"
          + f" | sent {row['bytes_sent'] / MB:.2f} MB, received {row['bytes_received'] / MB:.2f} MB"
          + f" (full model {full_bytes / MB:.1f} MB) | {row['round_seconds']:.1f} s"
          + (f" | epsilon {row['epsilon']:.3f} at delta {delta:g}" if "epsilon" in row else ""), flush=True)


def finish_run(rt, cfg, tensors: dict, run_dir: Path, full_bytes: int, seconds: float) -> dict:
    """Save the final global model as `train` saves a run's model (eval / predict load it) and summary.json."""
    from ..config import to_dict
    from ..models import save_run_model
    from ..peft import save_options
    set_tensors(rt.model, rt.initial_kept)
    set_tensors(rt.model, tensors)
    save_run_model(rt.model, run_dir / "model", to_dict(cfg), rt.bundle.label_names, rt.preprocessor,
                   **save_options(rt.model, cfg))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == "federated"]
    summary = _summary(rt, cfg, rows, full_bytes, seconds, run_dir)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def serve(grid, cfg, *, resume: bool = False, overwrite: bool = False) -> dict:
    """The ServerApp's work: the federation's rounds, the run folder, the final global model. Returns the summary."""
    from ..config import to_dict
    from ..tracking import build_trackers, flatten
    from .privacy import epsilon

    f = cfg.federated
    if f.secagg:
        raise TunewrightError("federated.secagg: true runs secagg.serve_secagg (Flower's SecAgg+ workflow), not serve")
    strategy = build_strategy(f)                  # config errors before the model loads
    rt, run_dir = start_run(cfg, resume=resume, overwrite=overwrite)
    state_dir = run_dir / "server_state"
    tensors, start = get_tensors(rt.model, rt.names), 1
    saved = load_state(state_dir) if resume else None
    if saved is not None:
        last, tensors, strategy_state, _ = saved
        restore_strategy(strategy, strategy_state)
        start = last + 1
        print(f"resumed after round {last} from {state_dir}")
    arrays = to_record(tensors)
    full_bytes = model_bytes(rt.model)
    trackers = build_trackers(cfg.tracking, run_dir, start - 1 if saved is not None else None)
    for t in trackers:
        t.log_params(flatten(to_dict(cfg)))
    evaluate_global = _global_evaluator(rt, rt.names, f.eval_subset)
    t_start = time.perf_counter()
    try:
        for rnd in range(start, f.rounds + 1):
            random.seed(cfg.train.seed * 100_003 + rnd)   # Flower samples clients with `random`: seeded per round
            arrays, row = run_round(grid, strategy, rnd, arrays, f, evaluate_global)
            row = {"step": rnd, **row, "model_bytes": full_bytes}
            if f.dp_noise_multiplier is not None:
                row["epsilon"], row["delta"] = epsilon(f.dp_noise_multiplier, rnd, f.dp_delta), f.dp_delta
            for t in trackers:
                t.log_metrics(row)
            save_state(state_dir, rnd, from_record(arrays), strategy, {"row": row})
            print_round(row, f.rounds, full_bytes, f.dp_delta)
        summary = finish_run(rt, cfg, from_record(arrays), run_dir, full_bytes, time.perf_counter() - t_start)
    finally:
        for t in trackers:
            t.close()
    return summary


def _summary(rt, cfg, rows: list[dict], full_bytes: int, seconds: float, run_dir: Path) -> dict:
    from ..evaluate import evaluate_dataset
    b, t = rt.bundle, cfg.train
    test = evaluate_dataset(rt.model, b.test, b.collate, cfg.task, b.num_labels, t.eval_batch_size or 2 * t.batch_size,
                            rt.precision)
    last = rows[-1] if rows else {}
    per_client = {c["client"]: c for r in rows for c in r["clients"]}   # each client's latest figures
    return {"test": test, "rounds": len(rows), "federated": {
        "accuracy_per_round": [r.get("test_accuracy") for r in rows],
        "bytes_sent_per_round": [r["bytes_sent"] for r in rows],
        "bytes_received_per_round": [r["bytes_received"] for r in rows],
        "model_bytes": full_bytes, "travelling_tensors": len(rt.names),
        "travelling_params": int(sum(p.numel() for n, p in rt.model.named_parameters() if n in set(rt.names))),
        "clients": [per_client[k] for k in sorted(per_client)],
        "clients_accuracy": last.get("clients_accuracy"), "clients_accuracy_personal": last.get("clients_accuracy_personal"),
        "rejected": [dict(x, round=r["round"]) for r in rows for x in r["rejected"]],
        "epsilon": last.get("epsilon"), "delta": last.get("delta")},
        "federate_seconds": round(seconds, 2), "label_names": b.label_names, "run_dir": str(run_dir)}


def make_server_app(config_text: Optional[str] = None, *, resume: bool = False, overwrite: bool = False):
    """The ServerApp: `config_text` (simulation) or the run config's `config` key (deployment: `flwr run`)."""
    from flwr.serverapp import ServerApp
    from .client import parse_config

    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        rc = context.run_config
        cfg = parse_config(config_text or str(rc["config"]))
        kw = dict(resume=resume or bool(rc.get("resume", False)), overwrite=overwrite or bool(rc.get("overwrite", False)))
        if cfg.federated.secagg:
            from .secagg import serve_secagg
            serve_secagg(grid, context, cfg, **kw)
        else:
            serve(grid, cfg, **kw)

    return app


def federate(config, overrides: Optional[list[str]] = None, *, resume: bool = False, overwrite: bool = False,
             client_app=None) -> dict:
    """Run the federation in Flower's simulation runtime (Ray) on this machine; returns summary.json's contents.
    `client_app` replaces the ClientApp (tests inject failing clients this way)."""
    import os
    from flwr.simulation import run_simulation
    from ..config import dump_yaml
    from ..run import as_config
    from .client import make_client_app

    cfg = as_config(config, overrides)
    build_strategy(cfg.federated)                 # config errors before Ray starts
    text = dump_yaml(cfg)
    f = cfg.federated
    run_dir = Path(cfg.output_dir) / cfg.run_name
    before = (run_dir / "summary.json").stat().st_mtime if (run_dir / "summary.json").exists() else None
    backend = {"client_resources": {"num_cpus": f.client_cpus, "num_gpus": 0.0},
               "init_args": {"num_cpus": f.num_cpus or os.cpu_count(), "include_dashboard": False,
                             "log_to_driver": True}}
    run_simulation(server_app=make_server_app(text, resume=resume, overwrite=overwrite),
                   client_app=client_app or make_client_app(text), num_supernodes=f.num_clients,
                   backend_config=backend)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists() or summary_path.stat().st_mtime == before:
        raise TunewrightError(f"the federation did not finish: no new {summary_path} (Flower's log above says why)")
    return json.loads(summary_path.read_text())
