"""The server side's pieces: the Flower strategy by name, and the screening of client updates.

    build_strategy(opts)          FedAvg / FedProx / FedAdam / FedYogi from flwr.serverapp.strategy,
                                  with Flower's DP wrapper when dp_noise_multiplier is set
    update_norm(update, global)   ||w_client - w_global||_2 over the tensors that travel
    screen(replies, global, ...)  (kept, rejected): a reply with an error (a client that dropped out),
                                  NaN/Inf, or a norm above max_update_norm is left out of aggregation

Aggregation itself is Flower's; so are the FedAdam/FedYogi moments that state.py saves.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..errors import ConfigError


def _fedavg(o, common):
    from flwr.serverapp.strategy import FedAvg
    return FedAvg(**common)


def _fedprox(o, common):
    from flwr.serverapp.strategy import FedProx
    return FedProx(proximal_mu=o.proximal_mu, **common)


def _fedopt(cls_name: str) -> Callable:
    def build(o, common):
        import flwr.serverapp.strategy as s
        b1, b2 = o.server_betas
        return getattr(s, cls_name)(eta=o.server_lr, tau=o.server_tau, beta_1=b1, beta_2=b2, **common)
    return build


STRATEGIES: dict[str, Callable] = {
    "fedavg": _fedavg,
    "fedprox": _fedprox,            # the client reads `proximal-mu` from the round's config
    "fedadam": _fedopt("FedAdam"),  # Reddi et al. 2021; server-side moments m_t, v_t (state.py saves them)
    "fedyogi": _fedopt("FedYogi"),
}


def build_strategy(o):
    """The Flower strategy for a FederatedOptions `o` (None under secagg: the SecAgg+ workflow brings its own)."""
    if o.aggregation not in STRATEGIES:
        raise ConfigError(f"federated.aggregation: {o.aggregation!r} is not known; choose one of "
                          f"{', '.join(STRATEGIES)}.")
    if not 1 <= o.clients_per_round <= o.num_clients:
        raise ConfigError(f"federated.clients_per_round: {o.clients_per_round} must be between 1 and "
                          f"federated.num_clients ({o.num_clients}).")
    if not 1 <= o.min_clients <= o.clients_per_round:
        raise ConfigError(f"federated.min_clients: {o.min_clients} must be between 1 and "
                          f"federated.clients_per_round ({o.clients_per_round}).")
    if o.secagg:                       # secagg.py runs Flower's legacy FedAvg inside the SecAgg+ workflow
        from .secagg import check_secagg
        check_secagg(o)
        return None
    dp = o.dp_noise_multiplier is not None
    common = dict(fraction_train=o.clients_per_round / o.num_clients, min_train_nodes=o.clients_per_round,
                  fraction_evaluate=1.0, min_evaluate_nodes=o.num_clients, min_available_nodes=o.num_clients,
                  # DP-FedAvg averages with equal weights: the noise std z*C/m assumes each client moves the
                  # mean by at most C/m. Otherwise FedAvg weighs by the client's number of training rows.
                  weighted_by_key="uniform-weight" if dp else "num-examples")
    strategy = STRATEGIES[o.aggregation](o, common)
    if dp:
        from .privacy import wrap_dp
        strategy = wrap_dp(strategy, o.dp_noise_multiplier, o.dp_clipping_norm, o.clients_per_round)
    return strategy


def inner(strategy):
    """The Flower strategy under any wrappers (the DP wrapper keeps it as `.strategy`)."""
    while hasattr(strategy, "strategy"):
        strategy = strategy.strategy
    return strategy


def update_norm(update: dict, global_arrays: dict) -> float:
    """L2 norm of (update - global) over all tensors (numpy arrays by name); inf/nan when the update has them."""
    total = 0.0
    for k, g in global_arrays.items():
        d = np.asarray(update[k], dtype=np.float64) - np.asarray(g, dtype=np.float64)
        total += float(np.sum(d * d))
    return math.sqrt(total)


def check_update(update: dict, global_arrays: dict, max_norm: float | None) -> str | None:
    """Why this client update must not be aggregated, or None when it may."""
    if set(update) != set(global_arrays):
        return f"its tensors differ from the global ones ({len(set(update) ^ set(global_arrays))} names)"
    for k, a in update.items():
        a = np.asarray(a)
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            return f"tensor {k!r} has {int((~np.isfinite(a)).sum())} NaN/Inf values"
    if max_norm is not None:
        norm = update_norm(update, global_arrays)
        if norm > max_norm:
            return f"update norm {norm:.4g} > federated.max_update_norm {max_norm:g}"
    return None


def screen(replies, global_arrays: dict, max_norm: float | None, arrays_key: str = "arrays"):
    """(kept replies, rejected [(partition id or node id, reason)]) of one round's training replies."""
    kept, rejected = [], []
    for msg in replies:
        who = msg.metadata.src_node_id
        if msg.has_error():
            rejected.append((who, f"dropped out: {msg.error.reason}"))
            continue
        who = int(next(iter(msg.content.metric_records.values())).get("partition-id", who))
        record = msg.content.array_records.get(arrays_key)
        if record is None:
            rejected.append((who, "no arrays in the reply"))
            continue
        reason = check_update({k: a.numpy() for k, a in record.items()}, global_arrays, max_norm)
        if reason is None:
            kept.append(msg)
        else:
            rejected.append((who, reason))
    return kept, rejected
