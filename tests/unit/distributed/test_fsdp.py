"""ShardedParallel (FSDP2) on 2 gloo ranks with a plain module: the averaged gradient is the global batch's,
the clip uses the global norm, accumulation keeps gradients local, a parameter unfrozen after sharding
trains, the optimizer's loaded state follows the shards, rank 0 gathers whole weights to write, restored
weights reach every rank's shards, and evaluation may run unequal batch counts per rank."""
import os

import pytest
import torch
import torch.distributed as dist
from torch import nn

from tunewright.errors import ConfigError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
        self.head = nn.Linear(4, 3)
        self.unused = nn.Linear(4, 4)          # trainable, never in forward (a pooler under mean pooling)

    def forward(self, batch):
        x = batch["inputs"]
        for b in self.blocks:
            x = torch.relu(b(x))
        return self.head(x)


def loss_fn(logits, batch):
    return nn.functional.cross_entropy(logits, batch["labels"])


def rows(batch):
    return torch.tensor(float(batch["labels"].shape[0]))


X = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
Y = torch.tensor([0, 1, 2, 1, 0])


def batch_of(idx):
    return {"inputs": X[idx], "labels": Y[idx]}


def whole(t):
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().clone()


def one_process(max_norm):
    m = Net()
    m.blocks[0].requires_grad_(False)
    loss_fn(m(batch_of(list(range(5)))), batch_of(list(range(5)))).backward()
    norm = torch.nn.utils.clip_grad_norm_([p for p in m.parameters() if p.requires_grad], max_norm)
    return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}, float(norm)


def worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from tunewright.data.batching import rank_slice
    from tunewright.distributed.env import World
    from tunewright.distributed.fsdp import ShardedParallel, is_sharded

    b = batch_of(rank_slice(list(range(5)), rank, 2))     # 3 rows and 2 rows: unequal on purpose
    res = {}
    model = Net()
    model.blocks[0].requires_grad_(False)                   # frozen before sharding
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    # a resumed run's optimizer: whole moments loaded before sharding (the same on every rank)
    for p in opt.param_groups[0]["params"]:
        opt.state[p] = {"step": torch.tensor(3.0), "exp_avg": torch.full_like(p, 0.5),
                        "exp_avg_sq": torch.full_like(p, 0.25)}
    par = ShardedParallel(World(rank=rank, world=2, launched=True), rows, torch.device("cpu"))
    par.shard(model, opt)
    res["sharded"] = is_sharded(model) and hasattr(model.head.weight, "to_local")
    res["slice"] = tuple(model.head.weight.to_local().shape)
    res["opt_on_shards"] = all(p is q for p, q in zip(opt.param_groups[0]["params"],
                                                      [p for p in model.parameters() if p.requires_grad]))
    res["moment"] = whole(opt.state[model.head.weight]["exp_avg"])
    # grad_accum 2 over the same rows: off the boundary the gradient stays local and accumulates (FSDP2 keeps
    # it unsharded), on the boundary the sum is reduce-scattered: the one-process gradient
    for sync in (False, True):
        with par.replica(model, sync=sync) as net:
            (loss_fn(net(b), b) * par.loss_weight(b, True) / 2).backward()
        if not sync:
            res["local_sharded_grad"] = model.head.weight.grad
    params = [p for p in model.parameters() if p.requires_grad]
    res["norm"] = float(par.clip_grad_norm(params, 0.5))
    res["clipped"] = {n: whole(p.grad) for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    model.blocks[0].requires_grad_(True)                    # unfrozen after sharding (gradual unfreezing)
    with par.replica(model, sync=True) as net:
        (loss_fn(net(b), b) * par.loss_weight(b, True)).backward()
    res["unfrozen_grad"] = whole(model.blocks[0].weight.grad)
    model.zero_grad(set_to_none=True)
    # rank 0 writes from whole tensors
    with par.gathered(model, opt) as (twin, view):
        if rank == 0:
            res["twin"] = {k: v.clone() for k, v in twin.state_dict().items()}
            head = [id(p) for p in opt.param_groups[0]["params"]].index(id(model.head.weight))
            res["view_moment"] = view.state_dict()["state"][head]["exp_avg"]
        else:
            res["twin"] = twin
    res["model"] = {k: whole(v) for k, v in model.state_dict().items()}
    # restore: rank 0 loads (here: zeros the head), every rank's shards get it
    par.restore(model, lambda twin: twin.head.weight.data.zero_() is not None)
    res["restored_head"] = whole(model.head.weight)
    # evaluation: unequal forward counts per rank, no collective inside
    model.eval()
    with par.evaluating(model), torch.no_grad():
        for _ in range(rank + 1):
            res["eval"] = model(batch_of([0]))
    dist.barrier()
    out[rank] = res
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(two_ranks):
    return two_ranks(worker)


def test_the_model_and_optimizer_are_sharded(ranks):
    assert ranks[0]["sharded"] and ranks[1]["sharded"]
    assert ranks[0]["slice"] == (2, 4) and ranks[1]["slice"] == (1, 4)    # 3 rows split over 2 ranks
    assert ranks[0]["opt_on_shards"] and ranks[1]["opt_on_shards"]
    assert torch.equal(ranks[0]["moment"], torch.full((3, 4), 0.5))      # the loaded state, sharded and whole again


def test_gradient_and_clip_equal_one_process(ranks):
    ref, norm = one_process(0.5)
    assert ranks[0]["local_sharded_grad"] is None       # no reduce-scatter before the boundary
    for r in (0, 1):
        assert ranks[r]["norm"] == pytest.approx(norm, rel=1e-5)
        assert ranks[r]["clipped"].keys() == ref.keys()                  # the frozen block and `unused`: none
        for n in ref:
            torch.testing.assert_close(ranks[r]["clipped"][n], ref[n], rtol=1e-5, atol=1e-6)


def test_a_block_unfrozen_after_sharding_gets_the_averaged_gradient(ranks):
    m = Net()
    loss_fn(m(batch_of(list(range(5)))), batch_of(list(range(5)))).backward()
    for r in (0, 1):
        torch.testing.assert_close(ranks[r]["unfrozen_grad"], m.blocks[0].weight.grad, rtol=1e-5, atol=1e-6)


def test_rank_0_gathers_whole_weights_and_optimizer_state(ranks):
    assert ranks[1]["twin"] is None
    twin, model = ranks[0]["twin"], ranks[0]["model"]
    assert twin.keys() == model.keys()
    for k in twin:
        assert torch.equal(twin[k], model[k]) and twin[k].shape == Net().state_dict()[k].shape
    assert torch.equal(ranks[0]["view_moment"], torch.full((3, 4), 0.5))


def test_restored_weights_reach_every_rank(ranks):
    assert torch.count_nonzero(ranks[0]["restored_head"]) == 0
    assert torch.count_nonzero(ranks[1]["restored_head"]) == 0


def test_evaluation_with_unequal_batch_counts(ranks):
    torch.testing.assert_close(ranks[0]["eval"], ranks[1]["eval"])


def test_shard_units_are_the_repeated_blocks():
    from tunewright.distributed.fsdp import shard_units
    m = Net()
    assert shard_units(m) == list(m.blocks)

    class Block(nn.Linear):
        pass

    class HF(nn.Module):                     # an HF model names its blocks in _no_split_modules
        _no_split_modules = ["Block"]

        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(Block(2, 2), Block(2, 2))
            self.head = nn.Linear(2, 2)
    hf = HF()
    assert shard_units(hf) == list(hf.layers)


def test_what_fsdp_refuses_says_why():
    from types import SimpleNamespace as NS

    from tunewright.distributed.fsdp import refuse_unsupported
    m = Net()
    with pytest.raises(ConfigError, match="feature cache.*ddp"):
        refuse_unsupported(NS(train=NS(precision="fp32")), nn.Linear(2, 2), m)
    with pytest.raises(ConfigError, match="fp16.*bf16 or fp32"):
        refuse_unsupported(NS(train=NS(precision="fp16")), m, m)
    refuse_unsupported(NS(train=NS(precision="fp32")), m, m)
