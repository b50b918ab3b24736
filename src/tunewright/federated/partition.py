"""Train rows -> clients, with flwr-datasets' partitioners (seeded by `train.seed`).

    iid        IidPartitioner: a seeded shuffle cut into equal parts
    dirichlet  DirichletPartitioner: client k's share of label c ~ Dir(alpha) (Hsu et al. 2019);
               alpha -> 0 gives each client few labels, alpha -> inf gives iid
    shards     ShardPartitioner: rows sorted by label, cut into num_clients * shards_per_client shards,
               each client gets shards_per_client of them (McMahan et al. 2017); the last shard may be short
               so that every row is used

Every partitioner assigns every row to exactly one client (tests/unit/federated/test_partition.py).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import ConfigError


def _partitioner(name: str, num_clients: int, n: int, seed: int, alpha: float, shards_per_client: int,
                 min_partition_size: int):
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner, ShardPartitioner
    if name == "iid":
        return IidPartitioner(num_partitions=num_clients)
    if name == "dirichlet":
        return DirichletPartitioner(num_partitions=num_clients, partition_by="label", alpha=alpha,
                                    min_partition_size=min_partition_size, self_balancing=False, seed=seed)
    if name == "shards":
        shard_size = math.ceil(n / (num_clients * shards_per_client))
        return ShardPartitioner(num_partitions=num_clients, partition_by="label", shard_size=shard_size,
                                keep_incomplete_shard=True, seed=seed)
    raise ConfigError(f"federated.partitioner: {name!r} is not known; choose one of iid, dirichlet, shards.")


def partition(labels: Sequence[int], num_clients: int, name: str = "iid", *, seed: int = 0, alpha: float = 0.5,
              shards_per_client: int = 2, min_partition_size: int = 2) -> list[np.ndarray]:
    """Row indices of each client's partition (sorted), for rows with these integer `labels`."""
    import datasets

    labels = np.asarray(labels)
    if num_clients < 1 or num_clients > len(labels):
        raise ConfigError(f"federated.num_clients: {num_clients} must be between 1 and the {len(labels)} train rows.")
    # IidPartitioner cuts the dataset in order, so the seeded shuffle happens here.
    order = np.random.default_rng(seed).permutation(len(labels)) if name == "iid" else np.arange(len(labels))
    ds = datasets.Dataset.from_dict({"label": labels[order].tolist(), "row": order.tolist()})
    p = _partitioner(name, num_clients, len(labels), seed, alpha, shards_per_client, min_partition_size)
    p.dataset = ds
    try:
        return [np.sort(np.asarray(p.load_partition(k)["row"], dtype=np.int64)) for k in range(num_clients)]
    except ValueError as e:   # flwr-datasets explains (e.g. min_partition_size cannot be met)
        raise ConfigError(f"federated.partitioner {name} with num_clients={num_clients}: {e}") from e


def label_histogram(labels: Sequence[int], rows: np.ndarray, num_labels: int) -> list[int]:
    return np.bincount(np.asarray(labels)[rows], minlength=num_labels).tolist()


def local_split(rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of one client: a seeded `fraction` of its rows is its own test slice."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(rows)
    n_test = int(round(len(rows) * fraction)) if len(rows) > 1 else 0
    return np.sort(shuffled[n_test:]), np.sort(shuffled[:n_test])


def skew(histograms: list[list[int]]) -> float:
    """Mean total-variation distance between each client's label distribution and the pooled one:
    0 for identical mixes, towards 1 when each client holds one label."""
    h = np.asarray(histograms, float)
    pooled = h.sum(0) / h.sum()
    per = h / np.maximum(h.sum(1, keepdims=True), 1)
    return float(0.5 * np.abs(per - pooled).sum(1).mean())


def describe(labels: Sequence[int], parts: list[np.ndarray], label_names: list[str]) -> list[dict]:
    """One row per client: its size and label histogram (printed and saved as partitions.json)."""
    return [{"client": k, "rows": int(len(rows)), "labels": dict(zip(label_names,
                                                                       label_histogram(labels, rows, len(label_names))))}
            for k, rows in enumerate(parts)]
