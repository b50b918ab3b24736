"""DataParallel on 2 gloo ranks (torch.multiprocessing, a plain nn.Module): the loss weighting makes the
averaged gradient the global batch's, no_sync keeps gradients local off the boundary, a parameter the
forward never uses needs no find_unused_parameters, and a requires_grad flipped after wrapping (gradual
unfreezing) is all-reduced because the model is wrapped again."""
import os

import pytest
import torch
import torch.distributed as dist
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)
        self.unused = nn.Linear(4, 4)          # trainable, never in forward (a pooler under mean pooling)

    def forward(self, batch):
        return self.head(torch.relu(self.body(batch["inputs"])))


def loss_fn(logits, batch):
    return nn.functional.cross_entropy(logits, batch["labels"])


def rows(batch):
    return torch.tensor(float(batch["labels"].shape[0]))


X = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
Y = torch.tensor([0, 1, 2, 1, 0])


def batch_of(idx):
    return {"inputs": X[idx], "labels": Y[idx]}


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def one_process_grads(freeze_body: bool):
    m = Net()
    m.body.requires_grad_(not freeze_body)
    loss_fn(m(batch_of(list(range(5)))), batch_of(list(range(5)))).backward()
    return grads(m)


def worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from tunewright.data.batching import rank_slice
    from tunewright.distributed.env import World
    from tunewright.distributed.parallel import DataParallel

    mine = rank_slice(list(range(5)), rank, 2)              # 3 rows and 2 rows: unequal on purpose
    b = batch_of(mine)
    res = {}
    model = Net()
    model.body.requires_grad_(False)                        # stage 1: body frozen
    par = DataParallel(World(rank=rank, world=2, launched=True), rows, torch.device("cpu"),
                       probe=lambda m: loss_fn(m(b), b))
    # off the boundary: no_sync, gradients stay this rank's own
    with par.replica(model, sync=False) as net:
        (loss_fn(net(b), b) * par.loss_weight(b, True)).backward()
    res["local"] = grads(model)
    model.zero_grad(set_to_none=True)
    # on the boundary: all-reduced, and equal to one process's gradient over all 5 rows
    for _ in range(2):                                       # twice: an unused parameter must not break step 2
        model.zero_grad(set_to_none=True)
        with par.replica(model, sync=True) as net:
            (loss_fn(net(b), b) * par.loss_weight(b, True)).backward()
    res["synced"] = grads(model)
    res["ignored"] = list(par.ignored)
    model.zero_grad(set_to_none=True)
    model.body.requires_grad_(True)                          # stage 2: the body unfreezes after wrapping
    with par.replica(model, sync=True) as net:
        (loss_fn(net(b), b) * par.loss_weight(b, True)).backward()
    res["unfrozen"] = grads(model)
    res["wraps"] = par.wraps
    out[rank] = res
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(two_ranks):
    return two_ranks(worker)


def test_off_the_boundary_gradients_stay_local(results):
    a, b = results[0]["local"], results[1]["local"]
    assert not torch.allclose(a["head.weight"], b["head.weight"])


def test_weighted_losses_average_to_the_global_batch_gradient_with_unequal_slices(results):
    ref = one_process_grads(freeze_body=True)
    for r in (0, 1):
        got = results[r]["synced"]
        assert got.keys() == ref.keys()
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-6, atol=1e-7)


def test_an_unused_parameter_is_ignored_without_find_unused_parameters(results):
    assert set(results[0]["ignored"]) == {"unused.weight", "unused.bias"}


def test_unfreezing_after_wrapping_wraps_again_and_all_reduces_the_new_parameters(results):
    ref = one_process_grads(freeze_body=False)
    assert results[0]["wraps"] == 2
    for r in (0, 1):
        for k in ref:
            torch.testing.assert_close(results[r]["unfrozen"][k], ref[k], rtol=1e-6, atol=1e-7)
