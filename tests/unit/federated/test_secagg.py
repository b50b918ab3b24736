"""Secure aggregation through Flower's own SecAgg+ workflow (secagg.py), on the in-process grid with the whole
ClientApp (its secaggplus_mod included): one round's aggregate equals plain FedAvg's within the quantization
error that secagg.py derives from clipping_range and quantization_range."""
import numpy as np
import pytest

from tunewright.config import dump_yaml
from tunewright.errors import ConfigError
from tunewright.federated.driver import serve
from tunewright.federated.state import load_state

from fed_grid import LocalGrid


def test_secagg_round_equals_fedavg_within_quantization_error(tiny_cfg):
    from flwr.app import Context, RecordDict
    from tunewright.federated.client import make_client_app
    from tunewright.federated.partition import local_split
    from tunewright.federated.secagg import quantization_bound, serve_secagg

    over = {"method": "lora", "federated.rounds": 1, "federated.min_clients": 3}
    plain_cfg = tiny_cfg(run_name="plain", **over)
    sent = []
    plain_grid = LocalGrid(dump_yaml(plain_cfg), 3, tamper=lambda pid, rnd, reply: sent.append(reply))
    plain = serve(plain_grid, plain_cfg)
    secure_cfg = tiny_cfg(run_name="secure", **over, **{"federated.secagg": True})
    text = dump_yaml(secure_cfg)
    grid = LocalGrid(text, 3, app=make_client_app(text))
    secure = serve_secagg(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}),
                          secure_cfg)

    # The server saw no client's tensors: secaggplus_mod empties the arrays and sends a masked vector instead.
    assert grid.replies and all(not any(len(r) for r in m.content.array_records.values()) for m in grid.replies)
    assert any("secaggplus_configs" in m.content.config_records for m in grid.replies)
    a = load_state(f"{plain['run_dir']}/server_state")[1]
    b = load_state(f"{secure['run_dir']}/server_state")[1]
    assert sorted(a) == sorted(b)

    f = secure_cfg.federated
    from tunewright.federated.client import runtime
    rt = runtime(text)
    rows = [len(local_split(p, f.local_test_fraction, secure_cfg.train.seed + k)[0]) for k, p in enumerate(rt.parts)]
    max_abs = max(float(np.abs(reply.content["arrays"][k].numpy()).max()) for reply in sent for k in a)
    bound = quantization_bound(f, rows, max(rows), max_abs)
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    initial = _initial_global(plain_cfg)
    moved = max(float((a[k] - initial[k]).abs().max()) for k in a)
    print(f"SecAgg+ vs FedAvg: max |diff| {diff:.3g}, bound {bound:.3g}, largest change in the round {moved:.3g}")
    assert 0 < diff <= bound            # quantized (not a copy of FedAvg), and within the derived error
    assert bound < 0.01 * moved         # the bound is far below what one round moves the tensors: a real check
    assert secure["federated"]["accuracy_per_round"][0] == pytest.approx(
        plain["federated"]["accuracy_per_round"][0], abs=0.1)


def _initial_global(cfg):
    """The global tensors before round 1 (the same seed builds the same model on every process)."""
    from tunewright.federated.client import build_runtime
    from tunewright.federated.arrays import get_tensors
    rt = build_runtime(cfg)
    return get_tensors(rt.model, rt.names)


@pytest.mark.parametrize("key, value", [("federated.personalize", "head"), ("federated.dp_noise_multiplier", 0.5),
                                        ("federated.max_update_norm", 1.0), ("federated.aggregation", "fedadam"),
                                        ("federated.clients_per_round", 2)])
def test_secagg_config_errors_name_the_key(tiny_cfg, key, value):
    from tunewright.federated.server import build_strategy
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_strategy(tiny_cfg(**{"federated.secagg": True, key: value}).federated)
