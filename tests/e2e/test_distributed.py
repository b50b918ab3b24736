"""Several processes on CPU with gloo, on the tiny BERT (configs/tiny.yaml): 2 processes against 1 with the
same global batch, LoRA, gradual unfreezing across a stage change, grad_accum=2, a SIGKILLed rank under
--max-restarts, two nodes on loopback, rank-0-only writes, sharded evaluation, resume checks; FSDP2 against 1 process
(full, LoRA, gradual unfreezing) and its exact resume.

Dropout is off: each rank draws its own masks, so with dropout on the runs are equal in distribution
only. fp32: auto precision is bf16 on an AMX CPU. 60 training rows, global micro-batch 16: 4 steps/epoch.
Slow on 2 shared cores (about 10 launches of 2 processes); run this file alone.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"
COMMON = ["model.dropout=0", "model.head_dropout=0", "model.attention_dropout=0", "train.precision=fp32",
          "train.max_steps=10", "train.log_every_steps=1", "train.progress=plain", "checkpoint.every_steps=2",
          "checkpoint.keep_last=10", "train.eval_batch_size=16"]
# eval_batch_size: its default is 2 x the per-rank batch, so 1 x 16 and 2 x 8 would encode the LP-FT probe's
# features (LoRA) in batches of other shapes, and L-BFGS then stops an iteration apart.
# The workers import tunewright from PYTHONPATH when it is set (an installed package otherwise needs none).
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "PYTHONPATH": os.environ.get("PYTHONPATH") or str(REPO / "src")}

pytestmark = pytest.mark.slow


def tw(*args, env=None, check=True, timeout=600):
    p = subprocess.run([sys.executable, "-m", "tunewright", *map(str, args)], cwd=REPO, capture_output=True,
                       text=True, env={**ENV, **(env or {})}, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}")
    return p


def train(out, name, *extra, nproc=1, flags=()):
    launch = ["--nproc-per-node", str(nproc)] if nproc > 1 else []
    tw("train", TINY, f"output_dir={out}", f"run_name={name}", *COMMON, *extra, *launch, *flags)
    return Path(out) / name


def final_weights(run_dir):
    last = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    return last.name, load_file(str(last / "model.safetensors"))


def train_rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("split") == "train"]


def assert_same_run(one, two, atol=1e-5):
    (n1, w1), (n2, w2) = final_weights(one), final_weights(two)
    assert n1 == n2 == "step-000010"
    assert w1.keys() == w2.keys()
    worst = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    assert worst <= atol, f"weights differ by {worst}"
    r1, r2 = train_rows(one), train_rows(two)
    assert [r["step"] for r in r1] == [r["step"] for r in r2] == list(range(1, 11))
    for a, b in zip(r1, r2):                               # the logged losses, step by step
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5), a["step"]
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4), a["step"]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="module")
def one(out):
    """1 process, batch 16."""
    return train(out, "one", "train.batch_size=16")


@pytest.fixture(scope="module")
def two(out):
    """2 processes x batch 8, started by plain torchrun (`torchrun ... tunewright train CONFIG`); every
    rank records what it writes under the output folder."""
    run_dir = out / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", str(REPO / "tests/e2e/_audit_worker.py"),
           "train", TINY, f"output_dir={out}", "run_name=two", *COMMON, "train.batch_size=8"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={**ENV, "AUDIT_WATCH": str(run_dir), "AUDIT_OUT": str(out / "audit")})
    assert p.returncode == 0, p.stderr[-6000:]
    return run_dir


def test_two_processes_equal_one_with_the_same_global_batch(one, two):
    assert_same_run(one, two)
    s = json.loads((two / "summary.json").read_text())
    assert (s["batch_size"], s["world_size"], s["grad_accum"], s["global_batch"]) == (8, 2, 1, 16)
    assert len(s["peak_rss_mb_per_rank"]) == 2


def test_only_rank_0_writes(out, two):
    rank0 = json.loads((out / "audit.0").read_text())
    rank1 = json.loads((out / "audit.1").read_text())
    assert any("metrics.jsonl" in p for _, p in rank0) and any("checkpoints" in p for _, p in rank0)
    assert rank1 == [], rank1[:10]


def test_sharded_evaluation_equals_one_process_evaluation(two):
    from tunewright.run import evaluate_run
    s = json.loads((two / "summary.json").read_text())
    assert s["test"] == evaluate_run(two, split="test")     # exactly: each eval batch is the same bits
    assert s["val"] == evaluate_run(two, split="val")


LORA = ["method=lora", "lora.lr=0.01"]
UNFREEZE = ["strategy=gradual_unfreezing"]                 # epochs 0, 1, 2: the head, then one more group each


@pytest.fixture(scope="module")
def lora_one(out):
    """1 process, LoRA, batch 16: the reference of the DDP and the FSDP LoRA runs."""
    return train(out, "lora1", *LORA, "train.batch_size=16")


@pytest.fixture(scope="module")
def unfreeze_one(out):
    return train(out, "gu1", *UNFREEZE, "train.batch_size=16")


def test_lora_two_processes_equal_one(out, lora_one):
    assert_same_run(lora_one, train(out, "lora2", *LORA, "train.batch_size=8", nproc=2))


def test_gradual_unfreezing_across_stage_changes(out, unfreeze_one):
    assert_same_run(unfreeze_one, train(out, "gu2", *UNFREEZE, "train.batch_size=8", nproc=2))


def test_grad_accum_2(out):
    assert_same_run(train(out, "acc1", "train.batch_size=16", "train.grad_accum=2"),
                    train(out, "acc2", "train.batch_size=8", "train.grad_accum=2", nproc=2))


def test_resume_with_the_same_global_batch_continues_on_another_world_size(out, one, two, tmp_path):
    import shutil
    cut = tmp_path / "cut"
    shutil.copytree(two, cut)
    shutil.rmtree(cut / "checkpoints" / "step-000010")      # the 2-process run, stopped after step 8
    p = tw("train", TINY, f"output_dir={tmp_path}", "run_name=cut", *COMMON, "train.batch_size=16", "--resume")
    assert "step 8" in p.stdout and "world_size: 2 -> 1" in p.stderr
    assert_same_run(one, cut)


def test_resume_with_another_global_batch_is_refused_and_names_the_keys(out, one):
    before = (one / "config.yaml").read_text()
    p = tw("train", TINY, f"output_dir={out}", "run_name=one", *COMMON, "train.batch_size=32", "--resume", check=False)
    assert p.returncode == 2
    assert "global_batch.micro: 16 -> 32" in p.stderr and "global_batch.per_step: 16 -> 32" in p.stderr
    assert "--force" in p.stderr
    assert (one / "config.yaml").read_text() == before       # refused before anything was written


def _pids_tagged(tag):
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                env = (d / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"DIST_TEST_TAG={tag}".encode() in env:
                found.append((int(d.name), env))
    return found


def test_sigkill_one_rank_restarts_the_group_and_resumes_bit_identical(out, two):
    tag = uuid.uuid4().hex
    run_dir = out / "elastic"
    p = subprocess.Popen([sys.executable, "-m", "tunewright", "train", TINY, f"output_dir={out}", "run_name=elastic",
                          *COMMON, "train.batch_size=8", "--nproc-per-node", "2", "--max-restarts", "1"],
                         cwd=REPO, env={**ENV, "DIST_TEST_TAG": tag}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    killed = None
    deadline = time.time() + 300
    while killed is None and time.time() < deadline and p.poll() is None:
        if (run_dir / "checkpoints" / "step-000002").is_dir() and not (run_dir / "summary.json").exists():
            for pid, env in _pids_tagged(tag):
                if b"RANK=1" in env and b"LOCAL_RANK=1" in env:
                    os.kill(pid, signal.SIGKILL)               # mid-epoch 0 (4 steps per epoch)
                    killed = pid
        time.sleep(0.02)
    text = p.communicate(timeout=600)[0]
    assert killed is not None, "no rank was killed: " + text[-3000:]
    assert p.returncode == 0, text[-6000:]
    assert "restart 1" in text and "resumed from" in text
    _, w_two = final_weights(two)
    name, w_elastic = final_weights(run_dir)
    assert name == "step-000010"
    assert all(w_two[k].equal(w_elastic[k]) for k in w_two)   # bit-identical


def test_two_nodes_on_loopback_equal_the_single_node_run(out, two):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rdzv = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-endpoint", f"127.0.0.1:{port}",
            "--rdzv-id", f"test-{uuid.uuid4().hex[:8]}"]
    # 1 thread per worker as in the single-node run (each "node" alone would take both cores): then the bits match
    args = ["train", TINY, f"output_dir={out}", "run_name=nodes", *COMMON, "train.batch_size=8", "train.num_threads=1",
            *rdzv]
    nodes = [subprocess.Popen([sys.executable, "-m", "tunewright", *map(str, args), "--node-rank", str(r)], cwd=REPO,
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    texts = [n.communicate(timeout=600)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], texts[0][-3000:] + texts[1][-3000:]
    _, w_two = final_weights(two)
    _, w_nodes = final_weights(out / "nodes")
    assert all(w_two[k].equal(w_nodes[k]) for k in w_two)


# ---- FSDP2 (distributed.strategy: fsdp): sharded parameters, gradients and optimizer state ----------------

FSDP = ["distributed.strategy=fsdp", "train.batch_size=8", "--nproc-per-node", "2"]


def fsdp_train(out, name, *extra, flags=()):
    p = tw("train", TINY, f"output_dir={out}", f"run_name={name}", *COMMON, *extra, *FSDP, *flags)
    # it really sharded: the BERT blocks each on their own, and rank 0 holds about half of the values
    m = re.search(r"fsdp: 3 blocks \(BertEmbeddings, BertLayer\) and the root sharded over 2 ranks; rank 0 holds [\d,]+ of "
                  r"[\d,]+ parameter values \((\d+)%\)", p.stderr)
    assert m and 40 <= int(m.group(1)) <= 60, p.stderr[-3000:]
    return Path(out) / name


def test_fsdp_two_processes_equal_one_and_resume_bit_identical(out, one, tmp_path):
    import shutil
    from tunewright.run import evaluate_run
    fs = fsdp_train(out, "fsdp2")
    assert_same_run(one, fs)
    s = json.loads((fs / "summary.json").read_text())
    assert s["test"] == evaluate_run(fs, split="test")     # sharded evaluation: one process's metrics
    cut = tmp_path / "cut"                                  # stopped after step 4, resumed under FSDP
    shutil.copytree(fs, cut, ignore=shutil.ignore_patterns("step-00000[6-9]", "step-000010"))
    fsdp_train(tmp_path, "cut", flags=["--resume"])
    (_, w_fs), (_, w_cut) = final_weights(fs), final_weights(cut)
    assert all(w_fs[k].equal(w_cut[k]) for k in w_fs)


def test_fsdp_lora_and_gradual_unfreezing_equal_one(out, lora_one, unfreeze_one):
    assert_same_run(lora_one, fsdp_train(out, "fsdp_lora2", *LORA))
    assert_same_run(unfreeze_one, fsdp_train(out, "fsdp_gu2", *UNFREEZE))   # two stage changes after sharding
