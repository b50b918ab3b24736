"""Secure aggregation with Flower's SecAgg+ workflow (Bell et al. 2020, "Secure Single-Server Aggregation
with (Poly)Logarithmic Overhead"): the server learns the weighted sum of the sampled clients' tensors, never
one client's.

In Flower 1.42 SecAgg+ exists only on the legacy API: the server runs
`DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))` on a `LegacyContext` around a legacy
`flwr.server.strategy.FedAvg`, and each client is a `NumPyClient` behind `secaggplus_mod`. So
`federated.secagg: true` runs `serve_secagg` below instead of driver.py's loop; the client's local work
(client.local_fit, seeded by (seed, round, client) exactly as in driver.py) and the run folder are the same.
Nothing here encrypts, masks or quantizes: Flower does all of it.

Quantization (flwr.common.secure_aggregation.quantization). Client k with n_k training rows has weight
w_k = round(Q n_k / W) / Q (W = `max_weight`, set to the largest client's rows, so w_k <= 1) and sends
    q_k = stochastic_round((clip(w_k x_k, -c, c) + c) * Q / (2c))          c = clipping_range, Q = quantization_range
masked; the server unmasks sum_k q_k and returns x = (sum_k q_k 2c/Q - K c) / sum_k w_k. With no clipping
(|w_k x_k| <= c) and stochastic rounding off by < 1 per element,
    |x - sum_k w_k x_k / sum_k w_k|  <  K (2c / Q) / sum_k w_k
and, as |w_k - n_k/W| <= 1/(2Q), against plain FedAvg's sum_k n_k x_k / sum_k n_k it is off by at most
    K (2c + max_k |x_k|) / (Q sum_k w_k)                                     per element
(tests/unit/federated/test_secagg.py checks one round against plain FedAvg with this bound).

What SecAgg+ rules out: the server cannot screen single updates (max_update_norm, NaN checks), so those are
config errors with it, as are DP, personalization and FedAdam/FedYogi (they need more than a weighted mean).
"""
from __future__ import annotations

import random
import sys
import time
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError
from .arrays import get_tensors, model_bytes, set_tensors, to_record

STAGE_RECORD = "secaggplus_configs"     # flwr.common.secure_aggregation.secaggplus_constants.RECORD_KEY_CONFIGS


def check_secagg(o) -> None:
    """Config errors for what SecAgg+ cannot do (named keys, allowed values)."""
    bad = [("federated.aggregation", o.aggregation, "fedavg or fedprox", o.aggregation not in ("fedavg", "fedprox")),
           ("federated.personalize", o.personalize, "none", o.personalize != "none"),
           ("federated.dp_noise_multiplier", o.dp_noise_multiplier, "null", o.dp_noise_multiplier is not None),
           ("federated.max_update_norm", o.max_update_norm, "null (the server never sees one update)",
            o.max_update_norm is not None),
           ("federated.clients_per_round", o.clients_per_round, "3 or more (SecAgg+ shares keys among them)",
            o.clients_per_round < 3)]
    for key, value, allowed, wrong in bad:
        if wrong:
            raise ConfigError(f"{key}: {value!r} is not allowed with federated.secagg: true; use {allowed}.")


def secagg_workflow(o, max_weight: float):
    """Flower's SecAgg+ fit workflow: every sampled client gets a share of every other's keys; a round
    survives drop-outs while min_clients (at least 2) of them answer."""
    from flwr.server.workflow import SecAggPlusWorkflow
    n = o.clients_per_round
    return SecAggPlusWorkflow(num_shares=n, reconstruction_threshold=min(max(2, o.min_clients), n - 1),
                              max_weight=float(max_weight), clipping_range=o.secagg_clipping_range,
                              quantization_range=o.secagg_quantization_range, timeout=o.round_timeout)


def quantization_bound(o, rows: list[int], max_weight: float, max_abs: float) -> float:
    """The per-element bound above: SecAgg+'s aggregate against plain FedAvg's for clients with `rows`."""
    q = o.secagg_quantization_range
    weights = sum(round(q * n / max_weight) / q for n in rows)
    return len(rows) * (2 * o.secagg_clipping_range + max_abs) / (q * weights)


# --------------------------------------------------------------------------------------------- client side
def legacy_client(config_text: str, pid: int):
    """A NumPyClient (what secaggplus_mod wraps) over the same runtime and local fit as client.handle_train."""
    from flwr.client import NumPyClient
    from .client import local_fit, runtime

    class SecAggClient(NumPyClient):
        def fit(self, parameters, config):
            rt = runtime(config_text)
            incoming = {n: torch.from_numpy(np.array(a)) for n, a in zip(rt.names, parameters, strict=True)}
            set_tensors(rt.model, incoming)
            rows, _ = rt.client_rows(pid)
            rnd = int(config["server-round"])
            steps, loss = local_fit(rt, rows, rt.cfg.train.seed + 1000 * rnd + pid,
                                    float(config.get("proximal-mu", 0.0)), incoming)
            out = [t.numpy() for t in get_tensors(rt.model, rt.names).values()]
            return out, int(len(rows)), {"train-loss": float(loss), "local-steps": int(steps), "partition-id": pid}

    return SecAggClient().to_client()


def is_secagg(msg) -> bool:
    return STAGE_RECORD in msg.content.config_records


def secagg_when_asked(msg, context, call_next):
    """A client mod: Flower's `secaggplus_mod` on SecAgg+ messages, a pass-through otherwise."""
    from flwr.client.mod import secaggplus_mod
    return secaggplus_mod(msg, context, call_next) if is_secagg(msg) else call_next(msg, context)


def handle_secagg_train(msg, context, config_text: str):
    """The legacy fit (FitIns in, FitRes out) that secaggplus_mod calls in its masked-vector stage."""
    from flwr.client.message_handler.message_handler import handle_legacy_message_from_msgtype
    pid = int(context.node_config["partition-id"])
    return handle_legacy_message_from_msgtype(client_fn=lambda ctx: legacy_client(config_text, pid),
                                              message=msg, context=context)


# --------------------------------------------------------------------------------------------- server side
def message_bytes(msg) -> int:
    """Serialized bytes of a message's content: tensors, and the SecAgg+ keys, shares and masked vectors.
    (Flower's ConfigRecord.count_bytes fails on the protocol's empty lists; the protobuf size is the wire size.)"""
    from flwr.common.serde import recorddict_to_proto
    return recorddict_to_proto(msg.content).ByteSize()


class CountingGrid:
    """The grid, counting the bytes of every message it sends and receives (the protocol's overhead included)."""

    def __init__(self, grid):
        self.grid, self.sent, self.received = grid, 0, 0

    def __getattr__(self, name):
        return getattr(self.grid, name)

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        self.sent += sum(message_bytes(m) for m in messages)
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        self.received += sum(message_bytes(m) for m in replies if not m.has_error())
        return replies


def serve_secagg(grid, context, cfg, *, resume: bool = False, overwrite: bool = False) -> dict:
    """driver.serve's twin for federated.secagg: Flower's DefaultWorkflow + SecAggPlusWorkflow runs the rounds;
    its centralized-evaluation hook writes each round's row and server state. Returns the summary."""
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow

    from ..config import to_dict
    from ..tracking import build_trackers, flatten
    from .driver import _global_evaluator, finish_run, print_round, start_run
    from .partition import local_split
    from .state import save_state

    f = cfg.federated
    check_secagg(f)
    if resume:
        raise ConfigError("--resume is not supported with federated.secagg: true (Flower's legacy workflow counts "
                          "rounds from 1); start over with --overwrite.")
    rt, run_dir = start_run(cfg, overwrite=overwrite)
    train_rows = [len(local_split(p, f.local_test_fraction, cfg.train.seed + k)[0]) for k, p in enumerate(rt.parts)]
    max_weight = max(train_rows)                      # every client's weight n_k / W is at most 1
    full_bytes = model_bytes(rt.model)
    trackers = build_trackers(cfg.tracking, run_dir, None)
    for t in trackers:
        t.log_params(flatten(to_dict(cfg)))
    evaluate_global = _global_evaluator(rt, rt.names, f.eval_subset)
    counting = CountingGrid(grid)
    fits: dict[int, list] = {}
    clock = {"round": time.perf_counter()}

    def fit_config(rnd: int) -> dict:
        random.seed(cfg.train.seed * 100_003 + rnd)   # the legacy client manager samples with `random`
        clock["round"], clock["rnd"] = time.perf_counter(), rnd
        return {"server-round": rnd, **({"proximal-mu": f.proximal_mu} if f.aggregation == "fedprox" else {})}

    def fit_metrics(results):                         # (num_examples, metrics) of the clients that took part
        fits[clock["rnd"]] = [m for _, m in results]
        return {}

    def after_round(rnd: int, arrays: list, _config) -> Optional[tuple]:
        """Flower calls this with the aggregated tensors after every round (and once with round 0)."""
        tensors = {n: torch.from_numpy(np.array(a, dtype=np.float32)) for n, a in zip(rt.names, arrays, strict=True)}
        if rnd == 0:
            counting.sent = counting.received = 0
            return None
        clients = [{"client": int(m["partition-id"]), "train_loss": m["train-loss"], "local_steps": m["local-steps"]}
                   for m in fits.get(rnd, [])]
        metrics = evaluate_global(to_record(tensors))
        row = {"step": rnd, "round": rnd, "split": "federated", **{f"test_{k}": v for k, v in metrics.items()},
               "clients_accuracy": None, "clients_accuracy_personal": None,
               "clients_sampled": f.clients_per_round, "clients_aggregated": len(clients), "rejected": [],
               "bytes_sent": counting.sent, "bytes_received": counting.received,
               "round_seconds": round(time.perf_counter() - clock["round"], 3),
               "clients": sorted(clients, key=lambda c: c["client"]), "model_bytes": full_bytes,
               "secagg": {"max_weight": max_weight, "clipping_range": f.secagg_clipping_range,
                          "quantization_range": f.secagg_quantization_range}}
        counting.sent = counting.received = 0
        for t in trackers:
            t.log_metrics(row)
        save_state(run_dir / "server_state", rnd, tensors, None, {"row": row})
        print_round(row, f.rounds, full_bytes, f.dp_delta)
        latest["tensors"] = tensors
        return metrics.get("loss", 0.0), metrics

    latest = {"tensors": get_tensors(rt.model, rt.names)}
    initial = ndarrays_to_parameters([t.numpy() for t in latest["tensors"].values()])
    strategy = FedAvg(fraction_fit=f.clients_per_round / f.num_clients, min_fit_clients=f.clients_per_round,
                      min_available_clients=f.num_clients, fraction_evaluate=0.0, min_evaluate_clients=0,
                      initial_parameters=initial, on_fit_config_fn=fit_config, evaluate_fn=after_round,
                      fit_metrics_aggregation_fn=fit_metrics)
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=f.rounds, round_timeout=f.round_timeout),
                           strategy=strategy)
    t_start = time.perf_counter()
    try:
        DefaultWorkflow(fit_workflow=secagg_workflow(f, max_weight))(counting, legacy)
        if len(fits) < f.rounds:
            print(f"SecAgg+ aggregated {len(fits)} of {f.rounds} rounds (Flower's log above says why)", file=sys.stderr)
        summary = finish_run(rt, cfg, latest["tensors"], run_dir, full_bytes, time.perf_counter() - t_start)
    finally:
        for t in trackers:
            t.close()
    return summary

