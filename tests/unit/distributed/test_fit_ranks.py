"""fit() itself on 2 gloo ranks (torch.multiprocessing, a plain MLP on 61 rows: the last global batch is
short and splits 7/6): each rank trains on its own slice of every global batch, the slices make up the
one-process batch, and the weights after training equal one process's at the same global batch."""
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist

from tunewright.config import Config
from tunewright.optim import build_optimizer, build_scheduler, param_groups
from tunewright.training.loop import fit
from tunewright.training.losses import loss_for, loss_units
from tunewright.training.precision import Precision

N, BATCH, ACCUM = 61, 16, 2


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, batch):
        return self.net(batch["inputs"])


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return [{"inputs": x[i], "labels": y[i], "ids": torch.tensor(i)} for i in range(N)]


def collate(rows):
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


class Seen:
    def __init__(self):
        self.rows = []

    def on_batch_start(self, ctx, batch):
        self.rows.append(batch["ids"].tolist())


def train(world=None, rank=0):
    cfg = Config()
    cfg.data.bucket = False
    cfg.train.progress = "none"
    cfg.train.batch_size, cfg.train.grad_accum, cfg.train.epochs, cfg.train.lr = BATCH // (2 if world else 1), ACCUM, 2, 0.05
    model = Model()
    opt = build_optimizer(param_groups(model, cfg.train.lr, 0.0), "adamw", cfg.train.lr)
    sched = build_scheduler(opt, "constant", 100, 0.0)
    seen = Seen()
    parallel = None
    if world:
        from tunewright.distributed.env import World
        from tunewright.distributed.parallel import DataParallel
        parallel = DataParallel(World(rank=rank, world=2, launched=True), loss_units("classification"),
                                torch.device("cpu"))
    state = fit(model, data(), collate, opt, sched, cfg, loss_fn=loss_for("classification"),
                precision=Precision(torch.device("cpu"), None), callbacks=[seen], parallel=parallel)
    return {"rows": seen.rows, "weights": {k: v.clone() for k, v in model.state_dict().items()}, "steps": state.step}


def worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    out[rank] = train(world=2, rank=rank)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(two_ranks):
    return two_ranks(worker), train()


def test_each_rank_trains_on_its_own_slice_and_together_they_see_the_one_process_batches(results):
    ranks, one = results
    assert len(ranks[0]["rows"]) == len(ranks[1]["rows"]) == len(one["rows"])
    for a, b, whole in zip(ranks[0]["rows"], ranks[1]["rows"], one["rows"]):
        assert not set(a) & set(b)
        assert a + b == whole
    assert [len(r) for r in ranks[0]["rows"]][-1] == 7 and [len(r) for r in ranks[1]["rows"]][-1] == 6


def test_weights_equal_one_process_with_the_same_global_batch(results):
    ranks, one = results
    assert ranks[0]["steps"] == one["steps"]
    for k, v in one["weights"].items():
        torch.testing.assert_close(ranks[0]["weights"][k], v, rtol=1e-5, atol=1e-6)
        assert ranks[0]["weights"][k].equal(ranks[1]["weights"][k])          # the ranks stay in step
