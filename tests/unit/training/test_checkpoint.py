"""Checkpoints: exact resume, corruption detection, atomic writes, retention, no pickle."""
from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from tunewright.errors import CheckpointError
from tunewright.training.checkpoint import (latest_valid, list_checkpoints, load_checkpoint,
                                         prune_checkpoints, save_checkpoint, verify_checkpoint)
from tunewright.training.rng import capture_rng, restore_rng, seed_everything


# ---------------------------------------------------------------- helpers

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        # Dropout draws from the global torch RNG, so exact resume also needs the RNG restored.
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


class Tied(nn.Module):
    """Output projection shares its weight with the embedding, as in most language models."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        return self.head(self.emb(ids))


OPTIMIZERS = {
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.85, 0.99), weight_decay=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                              weight_decay=1e-4),
}


def make_run(opt_name, with_scheduler, seed):
    torch.manual_seed(seed)
    model = MLP()
    opt = OPTIMIZERS[opt_name](model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.9 ** s) if with_scheduler else None
    return model, opt, sched


def batches(n):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g))
            for _ in range(n)]


def train(model, opt, sched, data):
    model.train()
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if sched is not None:
            sched.step()


def assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def saved_run(root, steps=(1, 2), keep_last=5):
    model, opt, _ = make_run("adamw", False, seed=0)
    data = batches(max(steps))
    paths = []
    for s in steps:
        train(model, opt, None, data[s - 1:s])
        paths.append(save_checkpoint(root, s, model=model, optimizer=opt,
                                     trainer_state={"step": s}, keep_last=keep_last))
    return model, opt, paths


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_middle_byte(path):
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0xFF]))


@pytest.fixture
def restore_determinism():
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


# ---------------------------------------------------------------- exact resume

@pytest.mark.parametrize("with_scheduler", [False, True], ids=["no_sched", "lambdalr"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_resume_is_bit_identical(tmp_path, opt_name, with_scheduler):
    data = batches(8)
    model, opt, sched = make_run(opt_name, with_scheduler, seed=0)
    train(model, opt, sched, data[:3])
    path = save_checkpoint(tmp_path, 3, model=model, optimizer=opt, scheduler=sched,
                           trainer_state={"step": 3, "epoch": 0, "best": float("inf")})
    train(model, opt, sched, data[3:])  # the uninterrupted run

    # A "new process": different init, different RNG position, then resume.
    model2, opt2, sched2 = make_run(opt_name, with_scheduler, seed=123)
    state = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert state == {"step": 3, "epoch": 0, "best": float("inf")}
    train(model2, opt2, sched2, data[3:])

    assert_same_weights(model, model2)
    sd, sd2 = opt.state_dict(), opt2.state_dict()
    assert sd["param_groups"] == sd2["param_groups"]  # lr, betas (a tuple again), params...
    for idx, per_param in sd["state"].items():
        for key, value in per_param.items():
            other = sd2["state"][idx][key]
            if isinstance(value, torch.Tensor):
                assert value.dtype == other.dtype and value.shape == other.shape, key
                assert torch.equal(value, other), key
            else:
                assert value == other, key
    if sched is not None:
        assert sched.get_last_lr() == sched2.get_last_lr()
        assert sched.last_epoch == sched2.last_epoch == 8


def test_adamw_state_keeps_dtypes_and_0d_step(tmp_path):
    model, opt, _ = make_run("adamw", False, seed=0)
    train(model, opt, None, batches(2))
    path = save_checkpoint(tmp_path, 2, model=model, optimizer=opt, trainer_state={})
    model2, opt2, _ = make_run("adamw", False, seed=1)
    load_checkpoint(path, model=model2, optimizer=opt2)
    step = opt2.state_dict()["state"][0]["step"]
    assert isinstance(step, torch.Tensor) and step.shape == () and step.dtype == torch.float32
    assert step.item() == 2.0
    assert isinstance(opt2.param_groups[0]["betas"], tuple)


def test_resume_without_rng_restore_differs(tmp_path):
    # Shows the bit-identical test above really depends on the RNG: dropout masks change.
    data = batches(6)
    model, opt, _ = make_run("adamw", False, seed=0)
    train(model, opt, None, data[:3])
    path = save_checkpoint(tmp_path, 3, model=model, optimizer=opt, trainer_state={})
    train(model, opt, None, data[3:])
    model2, opt2, _ = make_run("adamw", False, seed=123)
    load_checkpoint(path, model=model2, optimizer=opt2, restore_rng=False)
    train(model2, opt2, None, data[3:])
    assert not torch.equal(model.net[0].weight, model2.net[0].weight)


# ---------------------------------------------------------------- RNG

def draw():
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(),
            np.random.standard_normal(2).tolist(), torch.rand(4), torch.randn(2))


def assert_same_draws(a, b):
    for x, y in zip(a, b):
        assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y


def test_rng_round_trip_through_json():
    seed_everything(7)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's and NumPy's state
    np.random.standard_normal()
    tensors, json_state = capture_rng()
    json_state = json.loads(json.dumps(json_state))  # exactly what state.json stores
    first = draw()
    restore_rng(tensors, json_state)
    assert_same_draws(first, draw())


def test_load_restores_rng(tmp_path):
    model, opt, _ = make_run("adamw", False, seed=0)
    path = save_checkpoint(tmp_path, 0, model=model, optimizer=opt, trainer_state={})
    first = draw()
    draw()
    load_checkpoint(path, model=model, optimizer=opt)
    assert_same_draws(first, draw())


def test_seed_everything(restore_determinism):
    seed_everything(3)
    a = draw()
    seed_everything(3)
    assert_same_draws(a, draw())
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


# ---------------------------------------------------------------- tensors that share storage

def test_tied_weights_save_once_and_stay_tied(tmp_path):
    torch.manual_seed(0)
    model = Tied()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    loss = model(torch.tensor([1, 2, 3])).sum()
    loss.backward()
    opt.step()
    path = save_checkpoint(tmp_path, 1, model=model, optimizer=opt, trainer_state={})
    with safe_open(path / "model.safetensors", framework="pt") as f:
        assert len(list(f.keys())) == 1  # written once

    torch.manual_seed(1)
    fresh = Tied()
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    load_checkpoint(path, model=fresh, optimizer=opt2)
    assert fresh.head.weight is fresh.emb.weight
    assert torch.equal(fresh.emb.weight, model.emb.weight)
    fresh(torch.tensor([4])).sum().backward()
    opt2.step()
    assert fresh.head.weight is fresh.emb.weight


def test_views_of_one_storage_are_saved(tmp_path):
    model = nn.Module()
    flat = torch.arange(10.0)  # e.g. a flat parameter buffer: safetensors refuses shared memory
    model.register_buffer("a", flat[:4])
    model.register_buffer("b", flat[:4].view(2, 2))  # same memory, other shape
    model.register_buffer("c", flat[2:6])  # overlaps a
    model.register_buffer("d", flat[6:].view(2, 2).t())  # non-contiguous view
    path = save_checkpoint(tmp_path, 1, model=model, optimizer=None, trainer_state={})
    fresh = nn.Module()
    for name, shape in (("a", (4,)), ("b", (2, 2)), ("c", (4,)), ("d", (2, 2))):
        fresh.register_buffer(name, torch.zeros(shape))
    load_checkpoint(path, model=fresh)
    for name in "abcd":
        assert torch.equal(getattr(fresh, name), getattr(model, name)), name


def test_partial_model_state_loads_non_strict(tmp_path):
    model, opt, _ = make_run("adamw", False, seed=0)
    head_only = {k: v for k, v in model.state_dict().items() if k.startswith("net.3.")}
    path = save_checkpoint(tmp_path, 1, model=model, optimizer=None, trainer_state={},
                           model_state=head_only)
    assert json.loads((path / "state.json").read_text())["model"]["partial"] is True
    fresh, _, _ = make_run("adamw", False, seed=1)
    body_before = fresh.net[0].weight.clone()
    load_checkpoint(path, model=fresh)
    assert torch.equal(fresh.net[3].weight, model.net[3].weight)
    assert torch.equal(fresh.net[0].weight, body_before)  # untouched


def test_full_state_into_other_model_raises(tmp_path):
    model, _, _ = make_run("adamw", False, seed=0)
    path = save_checkpoint(tmp_path, 1, model=model, optimizer=None, trainer_state={})
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(path, model=nn.Linear(6, 3))
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(path, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=1))


def test_trainer_state_with_tensors_and_tuples(tmp_path):
    model, _, _ = make_run("adamw", False, seed=0)
    fisher = torch.rand(3, 2, dtype=torch.float64)
    state = {"callbacks": {"ewc": {"fisher": fisher, "lambda": 0.5}}, "pair": (1, "a"),
             "history": [1.5, None, True]}
    path = save_checkpoint(tmp_path, 1, model=model, optimizer=None, trainer_state=state)
    assert (path / "state.safetensors").is_file()
    back = load_checkpoint(path, model=model)
    assert torch.equal(back["callbacks"]["ewc"]["fisher"], fisher)
    assert back["callbacks"]["ewc"]["fisher"].dtype == torch.float64
    assert back["pair"] == (1, "a") and back["history"] == [1.5, None, True]


def test_non_json_trainer_state_raises_before_writing(tmp_path):
    model, _, _ = make_run("adamw", False, seed=0)
    with pytest.raises(CheckpointError, match=r"trainer_state\.best"):
        save_checkpoint(tmp_path / "c", 1, model=model, optimizer=None,
                        trainer_state={"best": np.float32(0.5)})
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------- corruption

def test_truncated_file_is_reported_and_skipped(tmp_path):
    _, _, (p1, p2) = saved_run(tmp_path)
    truncate(p2 / "model.safetensors")
    reason = verify_checkpoint(p2)
    assert "step-000002" in reason and "model.safetensors" in reason and "size" in reason
    messages = []
    assert latest_valid(tmp_path, log=messages.append) == p1
    assert len(messages) == 1
    assert "step-000002" in messages[0] and "model.safetensors" in messages[0]


@pytest.mark.parametrize("fname", ["model.safetensors", "optimizer.safetensors", "state.json"])
def test_flipped_byte_same_size_is_caught_by_sha(tmp_path, fname):
    _, _, (p1, p2) = saved_run(tmp_path)
    size = (p2 / fname).stat().st_size
    flip_middle_byte(p2 / fname)
    assert (p2 / fname).stat().st_size == size
    reason = verify_checkpoint(p2)
    assert "sha256" in reason and fname in reason and "step-000002" in reason
    assert latest_valid(tmp_path, log=lambda m: None) == p1


def test_missing_manifest_is_invalid(tmp_path):
    _, _, (p1, p2) = saved_run(tmp_path)
    (p2 / "manifest.json").unlink()
    assert "manifest" in verify_checkpoint(p2)
    assert latest_valid(tmp_path, log=lambda m: None) == p1
    assert verify_checkpoint(p1) is None


def test_unreadable_safetensors_with_matching_manifest(tmp_path):
    import hashlib
    _, _, (p1,) = saved_run(tmp_path, steps=(1,))
    bad = b"\xff" * 64
    (p1 / "rng.safetensors").write_bytes(bad)
    manifest = json.loads((p1 / "manifest.json").read_text())
    manifest["files"]["rng.safetensors"] = {"sha256": hashlib.sha256(bad).hexdigest(),
                                            "size": len(bad)}
    (p1 / "manifest.json").write_text(json.dumps(manifest))
    reason = verify_checkpoint(p1)
    assert "unreadable" in reason and "rng.safetensors" in reason


def test_load_of_invalid_checkpoint_names_the_file(tmp_path):
    model, opt, (p1,) = saved_run(tmp_path, steps=(1,))
    truncate(p1 / "optimizer.safetensors")
    with pytest.raises(CheckpointError, match=r"step-000001.*optimizer\.safetensors"):
        load_checkpoint(p1, model=model, optimizer=opt)


# ---------------------------------------------------------------- atomic writes

def test_tmp_folders_are_never_listed_and_stale_ones_are_removed(tmp_path):
    model, opt, (p1, p2) = saved_run(tmp_path)
    mine = tmp_path / f".tmp-step-000009-{os.getpid()}"  # complete-looking, but not renamed
    shutil.copytree(p2, mine)
    dead = tmp_path / ".tmp-step-000010-999999999"
    shutil.copytree(p2, dead)
    live_other = tmp_path / f".tmp-step-000011-{os.getppid()}"  # another live process writing
    live_other.mkdir()
    assert list_checkpoints(tmp_path) == [p1, p2]
    assert latest_valid(tmp_path) == p2
    save_checkpoint(tmp_path, 3, model=model, optimizer=opt, trainer_state={}, keep_last=5)
    assert not mine.exists() and not dead.exists() and live_other.exists()


def test_failed_rename_leaves_no_checkpoint(tmp_path, monkeypatch):
    model, opt, _ = make_run("adamw", False, seed=0)

    def boom(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "rename", boom)
    with pytest.raises(OSError, match="disk gone"):
        save_checkpoint(tmp_path, 1, model=model, optimizer=opt, trainer_state={})
    assert list(tmp_path.iterdir()) == []


def test_crash_mid_save_leaves_only_a_tmp_folder(tmp_path):
    # A real crash: the process dies (os._exit) just before writing the manifest.
    script = textwrap.dedent(f"""
        import os, torch
        from tunewright.training import checkpoint as ckpt
        write = ckpt._write_bytes
        def dying(path, data):
            if path.name == "manifest.json":
                os._exit(3)
            write(path, data)
        ckpt._write_bytes = dying
        ckpt.save_checkpoint({str(tmp_path)!r}, 7, model=torch.nn.Linear(2, 2), optimizer=None,
                             trainer_state={{}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 3, proc.stderr.decode()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-step-000007-")
    assert list_checkpoints(tmp_path) == [] and latest_valid(tmp_path) is None
    model = nn.Linear(2, 2)
    save_checkpoint(tmp_path, 8, model=model, optimizer=None, trainer_state={})
    assert [p.name for p in tmp_path.iterdir()] == ["step-000008"]  # the dead writer's tmp is gone


def test_saving_the_same_step_again_replaces_it(tmp_path):
    model, _, _ = make_run("adamw", False, seed=0)
    save_checkpoint(tmp_path, 5, model=model, optimizer=None, trainer_state={"v": 1})
    path = save_checkpoint(tmp_path, 5, model=model, optimizer=None, trainer_state={"v": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["step-000005"]
    assert load_checkpoint(path, model=model) == {"v": 2}


def test_nan_weight_raises_and_writes_nothing(tmp_path):
    model, opt, _ = make_run("adamw", False, seed=0)
    with torch.no_grad():
        model.net[3].bias[1] = float("nan")
    root = tmp_path / "ckpts"
    with pytest.raises(CheckpointError, match=r"net\.3\.bias"):
        save_checkpoint(root, 1, model=model, optimizer=opt, trainer_state={})
    assert not root.exists()


# ---------------------------------------------------------------- retention

def test_keep_last_two_of_four(tmp_path):
    _, _, paths = saved_run(tmp_path, steps=(1, 2, 3, 4), keep_last=2)
    assert list_checkpoints(tmp_path) == paths[2:]
    assert all(verify_checkpoint(p) is None for p in paths[2:])


def test_corrupt_checkpoints_do_not_count_toward_keep_last(tmp_path):
    model, opt, (p1, p2) = saved_run(tmp_path, steps=(1, 2), keep_last=2)
    truncate(p2 / "model.safetensors")
    p3 = save_checkpoint(tmp_path, 3, model=model, optimizer=opt, trainer_state={}, keep_last=2)
    # valid: 3 and 1 -> step 1 survives although two newer folders exist
    assert list_checkpoints(tmp_path) == [p1, p2, p3]
    p4 = save_checkpoint(tmp_path, 4, model=model, optimizer=opt, trainer_state={}, keep_last=2)
    assert list_checkpoints(tmp_path) == [p3, p4]


def test_prune_never_deletes_the_last_valid_checkpoint(tmp_path):
    _, _, (p1, p2, p3) = saved_run(tmp_path, steps=(1, 2, 3))
    flip_middle_byte(p2 / "model.safetensors")
    truncate(p3 / "model.safetensors")
    assert prune_checkpoints(tmp_path, 2) == []  # only one valid: keep everything
    assert prune_checkpoints(tmp_path, 1) == []  # p1 is the newest valid; nothing is older
    assert list_checkpoints(tmp_path) == [p1, p2, p3]
    assert latest_valid(tmp_path, log=lambda m: None) == p1


# ---------------------------------------------------------------- no pickle

def test_no_pickle_on_save_or_load(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("dump", "dumps", "load", "loads", "Pickler", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "save", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)

    model, opt, sched = make_run("adamw", True, seed=0)
    train(model, opt, sched, batches(2))
    path = save_checkpoint(tmp_path, 2, model=model, optimizer=opt, scheduler=sched,
                           trainer_state={"step": 2})
    load_checkpoint(path, model=model, optimizer=opt, scheduler=sched)

    names = sorted(p.name for p in path.iterdir())
    assert names == ["manifest.json", "model.safetensors", "optimizer.safetensors",
                     "rng.safetensors", "state.json"]
    # Identify every file positively: a pickle starts with b"\x80" (protocol >= 2) and
    # torch.save writes a zip (b"PK"), but a safetensors header length may start with 0x80 too.
    for p in path.iterdir():
        data = p.read_bytes()
        if p.suffix == ".json":
            assert data.startswith(b"{")
            json.loads(data)
        else:  # safetensors: u64 little-endian header length, then a JSON header
            n = int.from_bytes(data[:8], "little")
            assert data[8:9] == b"{" and 8 + n <= len(data)
            json.loads(data[8:8 + n])
