"""Two gloo ranks on loopback for the unit tests here: `two_ranks(worker)` runs worker(rank, port, out) in 2
spawned processes and returns what each put in `out[rank]`."""
import socket

import pytest
import torch.multiprocessing as mp


def _two_ranks(worker) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(worker, args=(port, out), nprocs=2, join=True)
        return dict(out)


@pytest.fixture(scope="session")
def two_ranks():
    return _two_ranks
