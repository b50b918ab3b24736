"""Fixtures of the federated tests; the in-process grid is fed_grid.LocalGrid (a module, not conftest, so that
the name does not clash with tests/e2e/conftest.py when both folders run together)."""
from __future__ import annotations

import pytest


@pytest.fixture
def tiny_cfg(tmp_path):
    """configs/tiny.yaml as a 3-client federation: 2 local steps, 2 rounds."""
    from tunewright.config import load_config
    return lambda **over: load_config("configs/tiny.yaml", [f"{k}={v}" for k, v in {
        "output_dir": str(tmp_path), "run_name": "fed", "train.batch_size": 8, "train.lr": 0.003,
        "federated.num_clients": 3, "federated.clients_per_round": 3, "federated.min_clients": 2,
        "federated.rounds": 2, "federated.local_steps": 2, **over}.items()])
