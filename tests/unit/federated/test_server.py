"""Aggregation is Flower's; these tests check what tunewright puts around it."""
import numpy as np
import pytest

from tunewright.config import load_config
from tunewright.errors import ConfigError
from tunewright.federated.server import build_strategy, check_update, screen


def _reply(arrays: dict, n: int, pid: int):
    from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.supercore.task_identity import TaskIdentity
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    msg = Message(RecordDict({"arrays": ArrayRecord({k: Array(np.asarray(v, np.float32)) for k, v in arrays.items()}),
                              "metrics": MetricRecord({"num-examples": n, "uniform-weight": 1, "partition-id": pid})}),
                  dst_node_id=pid + 1, message_type="train")
    msg.metadata.__dict__["_src_node_id"] = pid + 1
    return msg


def test_fedavg_of_two_clients_is_their_weighted_mean():
    cfg = load_config(None, ["federated.num_clients=2", "federated.clients_per_round=2"])
    a = {"w": np.array([1.0, 2.0]), "b": np.array([0.0])}
    b = {"w": np.array([3.0, -2.0]), "b": np.array([6.0])}
    agg, _ = build_strategy(cfg.federated).aggregate_train(1, [_reply(a, 10, 0), _reply(b, 30, 1)])
    for k in a:
        np.testing.assert_allclose(agg[k].numpy(), (10 * a[k] + 30 * b[k]) / 40, rtol=1e-6)


@pytest.mark.parametrize("name, cls", [("fedavg", "FedAvg"), ("fedprox", "FedProx"), ("fedadam", "FedAdam"),
                                       ("fedyogi", "FedYogi")])
def test_strategy_by_name(name, cls):
    cfg = load_config(None, [f"federated.aggregation={name}"])
    assert type(build_strategy(cfg.federated)).__name__ == cls


def test_unknown_strategy_names_the_key():
    with pytest.raises(ConfigError, match="federated.aggregation"):
        load_config(None, ["federated.aggregation=fedsgd"])
    with pytest.raises(ConfigError, match="federated.min_clients"):
        build_strategy(load_config(None, ["federated.min_clients=5"]).federated)


def test_nan_inf_and_norm_bound_are_rejected():
    g = {"w": np.zeros(3)}
    assert check_update({"w": np.array([0.0, np.nan, 0.0])}, g, None) is not None
    assert check_update({"w": np.array([0.0, np.inf, 0.0])}, g, None) is not None
    assert check_update({"w": np.array([3.0, 4.0, 0.0])}, g, 4.9) is not None      # norm 5
    assert check_update({"w": np.array([3.0, 4.0, 0.0])}, g, 5.1) is None


def test_screen_keeps_the_rest_and_logs_who():
    g = {"w": np.zeros(2)}
    replies = [_reply({"w": [1.0, 0.0]}, 5, 0), _reply({"w": [np.nan, 0.0]}, 5, 1), _reply({"w": [100.0, 0.0]}, 5, 2)]
    kept, rejected = screen(replies, g, max_norm=10.0)
    assert len(kept) == 1 and [w for w, _ in rejected] == [1, 2]
    assert "NaN" in rejected[0][1] and "norm" in rejected[1][1]
