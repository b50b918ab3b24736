"""Peer benchmark (issue #2): tunewright against a hand-written PyTorch loop and the HF Trainer.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_trainer.py            # full: 2 rounds, ~8-10 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_trainer.py --quick    # 3 timed steps, 1 round, README untouched

The same job, two measurements, each a pair of variants (METHOD_NOTES below says it in full; it is
also what benchmarks/README.md prints under the table):

- A. fixed shape, every batch padded to max_length: `tunewright_fixed` (run.assemble + fit(), its
  collate wrapped by PadTo) vs `hand_fixed` (`for batch in DataLoader` over the same architecture);
- B. each tool's defaults on real lengths: `tunewright` (`tunewright.train(config, callbacks=[clock])`:
  dynamic padding + length bucketing) vs `hf_trainer` (`transformers.Trainer` defaults).

A StepClock reads wall and CPU time at the end of every optimizer step; speeds count the steps after
warmup only. Each variant runs in a child process (`--variant NAME`, JSON back through a file), so its
peak RSS is its own. `run_benchmark()` is the core function (the smoke test calls it in-process).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
# measurement -> (tunewright variant, peer variant, goal for tunewright/peer samples/s)
MEASUREMENTS = {
    "A": ("tunewright_fixed", "hand_fixed", 0.95),
    "B": ("tunewright", "hf_trainer", 1.20),
}
VARIANTS = ("tunewright_fixed", "hand_fixed", "tunewright", "hf_trainer")
# torch's CPU allocator on huge pages (tunewright/huge_pages.py), set per child explicitly: tunewright's
# default for its own variants and for the hand loop of A (a loop-overhead comparison wants the same
# allocator on both sides); torch's own default, off, for the Trainer of B.
HUGE_PAGES_ENV = {"tunewright_fixed": {"THP_MEM_ALLOC_ENABLE": "1"}, "hand_fixed": {"THP_MEM_ALLOC_ENABLE": "1"},
                  "tunewright": {"THP_MEM_ALLOC_ENABLE": "1"}, "hf_trainer": {"THP_MEM_ALLOC_ENABLE": "0"}}
MEASUREMENT_OF = {v: m for m, pair in MEASUREMENTS.items() for v in pair[:2]}
README_START, README_END = "<!-- bench_trainer:start -->", "<!-- bench_trainer:end -->"


@dataclass
class BenchConfig:
    model: str = "minilm"            # a packaged tunewright model name (minilm, tiny-bert)
    dataset: str = "reuters-r8"
    steps: int = 20                  # timed optimizer steps per variant
    warmup: int = 2                  # untimed steps first (allocator, kernels, optimizer state)
    batch_size: int = 32
    max_length: int = 128
    lr: float = 5e-5
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 42
    threads: int = 2

    @property
    def rows(self) -> int:
        return (self.warmup + self.steps) * self.batch_size  # one epoch, every batch full


# ---- shared pieces ------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024.0


def model_dir(cfg: BenchConfig) -> str:
    """The ordinary HF folder of the packaged model (what the hand loop and the Trainer load)."""
    from tunewright.assets import get_model_asset
    return str(get_model_asset(cfg.model).prepare())


def subset(cfg: BenchConfig) -> tuple[list[str], list[str]]:
    """(texts, labels) of the benchmark rows: tunewright's seeded stratified subset of the train split."""
    from tunewright.assets import get_dataset
    from tunewright.data import subset_indices
    df = get_dataset(cfg.dataset).load()["train"]
    keep, _ = subset_indices(len(df), df["label"].tolist(), cfg.rows, cfg.seed)
    return df["text"].iloc[keep].tolist(), [str(x) for x in df["label"].iloc[keep]]


def label_names(cfg: BenchConfig) -> list[str]:
    """Every class of the train split (a small subset may miss some; the head is sized for all)."""
    from tunewright.assets import get_dataset
    return sorted({str(x) for x in get_dataset(cfg.dataset).load()["train"]["label"]})


def rows_digest(texts) -> str:
    """Order-free fingerprint of the rows a variant trains on (all variants must agree)."""
    return hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()[:16]


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine has spent busy since boot (all cores; /proc/stat, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def others_cpu_share(seconds: float, own_cpu_seconds: float, busy_seconds: float) -> float:
    """Share of the machine's cores that OTHER processes used over a window (0: we had it alone)."""
    return max(0.0, busy_seconds - own_cpu_seconds) / (seconds * (os.cpu_count() or 1))


def wait_until_quiet(max_wait_s: float, limit: float = 0.25, sample_s: float = 5.0) -> float:
    """Wait (up to max_wait_s) until other processes use less than `limit` of the machine; return their last share."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        busy0, own0, t0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
        time.sleep(sample_s)
        share = others_cpu_share(time.perf_counter() - t0, time.process_time() - own0, machine_busy_seconds() - busy0)
        if share < limit or time.perf_counter() >= deadline:
            return share


def trainable_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class StepClock:
    """Step-end timestamps plus, per step, the samples and padded shape the embedding layer saw."""

    def __init__(self):
        self.ends: list[float] = []
        self.cpu_ends: list[float] = []   # process CPU time (all threads): less sensitive to other load
        self.busy_ends: list[float] = []  # machine-wide busy CPU-seconds: how much OTHER work ran meanwhile
        self.samples: list[int] = []
        self.padded_tokens: list[int] = []
        self._samples = self._tokens = 0
        self.threads_seen: set[int] = set()
        self.rss_at_start = self.peak_rss_train = 0.0

    def mark_start(self) -> None:
        """Call when training starts: RSS now is the model + data + framework, before any step."""
        self.rss_at_start = current_rss_mb()

    def watch(self, embeddings) -> None:
        """Count batches at the word-embedding module: input_ids (B, T) is its first argument."""
        def hook(_module, args):
            b, t = args[0].shape
            self._samples += b
            self._tokens += b * t
        embeddings.register_forward_pre_hook(hook)

    def step_end(self) -> None:
        import torch
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())
        self.busy_ends.append(machine_busy_seconds())
        self.samples.append(self._samples)
        self.padded_tokens.append(self._tokens)
        self._samples = self._tokens = 0
        self.threads_seen.add(torch.get_num_threads())
        self.peak_rss_train = peak_rss_mb()

    def result(self, cfg: BenchConfig) -> dict:
        w, s = cfg.warmup, cfg.steps
        if len(self.ends) != w + s:
            raise RuntimeError(f"expected {w + s} optimizer steps, the clock saw {len(self.ends)}")
        seconds = self.ends[-1] - self.ends[w - 1]
        cpu_seconds = self.cpu_ends[-1] - self.cpu_ends[w - 1]
        samples = sum(self.samples[w:])
        others = others_cpu_share(seconds, cpu_seconds, self.busy_ends[-1] - self.busy_ends[w - 1])
        durations = [b - a for a, b in zip(self.ends[w - 1:], self.ends[w:])]
        return {"timed_steps": s, "timed_samples": samples, "timed_seconds": round(seconds, 3),
                "samples_per_s": round(samples / seconds, 3),
                "samples_per_cpu_s": round(samples / cpu_seconds, 3),
                "others_cpu_share": round(others, 3),   # of all cores, used by other processes during the timed steps
                "s_per_step": round(seconds / s, 3),
                "step_seconds": [round(d, 3) for d in durations],
                "mean_padded_len": round(sum(self.padded_tokens[w:]) / max(samples, 1), 1),
                "rss_before_train_mb": round(self.rss_at_start, 1),
                "peak_rss_mb": round(self.peak_rss_train, 1),      # process peak up to the last timed step
                "torch_threads": sorted(self.threads_seen)}


# ---- the variants -------------------------------------------------------------------------------

class PadTo:
    """Wraps a tunewright Collator: pad input_ids / attention_mask on the right to `length` (B, length)."""

    def __init__(self, collate, length: int):
        self.collate, self.length = collate, length

    def __call__(self, examples):
        import torch.nn.functional as F
        batch = self.collate(examples)
        extra = self.length - batch["input_ids"].shape[1]
        if extra > 0:
            batch["input_ids"] = F.pad(batch["input_ids"], (0, extra), value=getattr(self.collate, "pad_id", 0))
            batch["attention_mask"] = F.pad(batch["attention_mask"], (0, extra), value=0)
        return batch


def tunewright_config(cfg: BenchConfig, fixed: bool) -> dict:
    """The benchmark job as a tunewright config dict."""
    from tunewright.assets import get_dataset
    out = tempfile.mkdtemp(prefix="bench-tw-")
    # data.val_fraction must be > 0, which would take rows out of the benchmark subset; so `data.val`
    # is a small file of test rows instead. It is only evaluated after the timed steps.
    val_csv = Path(out) / "val.csv"
    get_dataset(cfg.dataset).load()["test"][["text", "label"]].head(16).to_csv(val_csv, index=False)
    return {
        "run_name": "bench", "output_dir": out, "task": "classification",
        "model": {"name": cfg.model},
        "data": {"train": cfg.dataset, "train_subset": cfg.rows, "val": str(val_csv), "test_subset": 16,
                 "max_length": cfg.max_length, "bucket": not fixed},
        "train": {"max_steps": cfg.warmup + cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr,
                  "weight_decay": cfg.weight_decay, "max_grad_norm": cfg.max_grad_norm, "schedule": "linear",
                  "warmup_ratio": 0.0, "seed": cfg.seed, "precision": "fp32", "device": "cpu",
                  "num_threads": cfg.threads, "progress": "none", "log_every_steps": 10_000},
    }


class ClockCallback:
    """A tunewright callback (a plain object with on_* methods) that drives a StepClock."""

    def __init__(self, clock: StepClock):
        self.clock, self.model = clock, None

    def on_fit_start(self, ctx) -> None:
        self.model = ctx.model
        self.clock.watch(ctx.model.backbone.get_input_embeddings())
        self.clock.mark_start()

    def on_step_end(self, ctx) -> None:
        self.clock.step_end()


def run_tunewright(cfg: BenchConfig, fixed: bool) -> dict:
    """B: the public API, `tunewright.train(config, callbacks=[clock])`, with tunewright's defaults.
    A: the same config through `run.assemble` (data, model, optimizer, scheduler exactly as train()
    builds them) and `fit()`, with the collate wrapped to pad every batch to max_length."""
    import torch
    import tunewright
    from tunewright.config.load import config_from_dict
    from tunewright.data import read_data

    tw = tunewright_config(cfg, fixed)
    clock = StepClock()
    cb = ClockCallback(clock)
    if fixed:
        from tunewright.run import assemble
        from tunewright.training.loop import fit
        from tunewright.training.losses import loss_for
        from tunewright.training.precision import resolve_precision
        conf = config_from_dict(tw)
        asm = assemble(conf)
        fit(asm.model, asm.bundle.train, PadTo(asm.bundle.collate, cfg.max_length), asm.optimizer, asm.scheduler,
            conf, loss_fn=loss_for("classification"), precision=resolve_precision("fp32", asm.device),
            callbacks=[cb])
    else:
        tunewright.train(tw, callbacks=[cb])  # evaluation and saving come after the timed steps
    raw = read_data(config_from_dict(tw))      # the rows train() read (it is deterministic), for the digest
    return {**clock.result(cfg), "trainable_params": trainable_params(cb.model),
            "rows": len(raw.train), "rows_digest": rows_digest(ex.text for ex in raw.train),
            "entry_point": "run.assemble + fit(), PadTo collate" if fixed else "tunewright.train(config, callbacks=[clock])",
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def mean_pool_classifier(path: str, num_labels: int, dropout: float = 0.1):
    """AutoModel without its pooler, masked mean pooling, dropout, linear head: the architecture and
    parameters of tunewright's TaskModel for MiniLM, written out by hand."""
    import torch
    from torch import nn
    from transformers import AutoModel

    class MeanPoolClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(path, add_pooling_layer=False, dtype=torch.float32)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(self.encoder.config.hidden_size, num_labels)

        def forward(self, input_ids, attention_mask):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
            m = attention_mask.unsqueeze(-1).to(h.dtype)                                         # (B, T, 1)
            return self.head(self.drop((h * m).sum(1) / m.sum(1).clamp(min=1)))                 # (B, C)
    return MeanPoolClassifier()


def run_hand(cfg: BenchConfig) -> dict:
    """The minimal loop: for batch in DataLoader: forward, loss, backward, clip, step."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    torch.manual_seed(cfg.seed)
    path = model_dir(cfg)
    texts, labels = subset(cfg)
    names = label_names(cfg)
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(texts, truncation=True, max_length=cfg.max_length, padding="max_length", return_tensors="pt")
    y = torch.tensor([names.index(label) for label in labels])
    data = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": y[i]}
            for i in range(len(y))]
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    model = mean_pool_classifier(path, len(names))
    decay = [p for p in model.parameters() if p.ndim > 1]          # no decay on biases / LayerNorm
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    total = cfg.warmup + cfg.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, (total - step) / total))
    clock = StepClock()
    clock.watch(model.encoder.get_input_embeddings())
    clock.mark_start()
    model.train()
    for batch in loader:
        loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        clock.step_end()
    return {**clock.result(cfg), "trainable_params": trainable_params(model),
            "rows": len(data), "rows_digest": rows_digest(texts),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def run_hf_trainer(cfg: BenchConfig) -> dict:
    """`transformers.Trainer` with its defaults, except what makes it the same job (see module doc)."""
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainerCallback,
                              TrainingArguments)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = model_dir(cfg)
    texts, labels = subset(cfg)
    names = label_names(cfg)
    tok = AutoTokenizer.from_pretrained(path)
    # A list of feature dicts is a valid train_dataset (`datasets` is not a tunewright dependency);
    # the default collator, DataCollatorWithPadding, pads each batch to its longest row.
    enc = tok(texts, truncation=True, max_length=cfg.max_length)
    ds = [{**{k: v[i] for k, v in enc.items()}, "label": names.index(label)} for i, label in enumerate(labels)]
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-hf-"), per_device_train_batch_size=cfg.batch_size,
        max_steps=cfg.warmup + cfg.steps, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, use_cpu=True, report_to="none",
        save_strategy="no", eval_strategy="no", disable_tqdm=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names), dtype=torch.float32)
    clock = StepClock()
    clock.watch(model.get_input_embeddings())

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            clock.mark_start()

        def on_step_end(self, args, state, control, **kw):
            clock.step_end()

    trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[Clock()])
    torch.set_num_threads(cfg.threads)   # after Trainer/accelerate setup, which may touch threads
    trainer.train()
    return {**clock.result(cfg), "trainable_params": trainable_params(model),
            "rows": len(ds), "rows_digest": rows_digest(texts), "optim": str(args.optim.value),
            "collator": type(trainer.data_collator).__name__,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def run_variant(variant: str, cfg: BenchConfig) -> dict:
    """Run one variant in this process and return its measurements."""
    import torch
    from tunewright.huge_pages import active as huge_pages_active
    if cfg.warmup < 1 or cfg.steps < 1:
        raise ValueError("warmup and steps must both be >= 1 (the timed window starts at the end of warmup)")
    torch.set_num_threads(cfg.threads)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    if variant == "tunewright_fixed":
        res = run_tunewright(cfg, fixed=True)
    elif variant == "tunewright":
        res = run_tunewright(cfg, fixed=False)
    elif variant == "hand_fixed":
        res = run_hand(cfg)
    elif variant == "hf_trainer":
        res = run_hf_trainer(cfg)
    else:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return {"variant": variant, "measurement": MEASUREMENT_OF[variant], **res,
            "peak_rss_exit_mb": round(peak_rss_mb(), 1), "wall_s": round(time.perf_counter() - t0, 1),
            "huge_pages": huge_pages_active(),
            "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}


# ---- orchestration ------------------------------------------------------------------------------

def run_child(variant: str, cfg: BenchConfig, settle_s: float = 0.0) -> dict:
    """One variant in a fresh interpreter, so its peak RSS is its own. With settle_s > 0, first wait
    up to that long for the other processes on the machine to quiet down."""
    quiet = wait_until_quiet(settle_s) if settle_s > 0 else None
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant, "--child-json", out,
           *[a for k, v in dataclasses.asdict(cfg).items() for a in (f"--{k.replace('_', '-')}", str(v))]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **HUGE_PAGES_ENV[variant]})
    if proc.returncode != 0:
        raise RuntimeError(f"variant {variant} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    return {**result, "others_cpu_share_before": None if quiet is None else round(quiet, 3)}


def median(xs):
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def summarize(runs: list[dict]) -> dict:
    """One variant over its rounds: medians of the speeds, the largest peak RSS, the raw rounds."""
    keys = ("samples_per_s", "samples_per_cpu_s", "s_per_step", "peak_rss_mb", "rss_before_train_mb", "others_cpu_share")
    last = runs[-1]
    return {**{k: v for k, v in last.items() if k not in keys and k != "step_seconds"},
            **{k: round(median([r[k] for r in runs]), 3) for k in keys if k != "peak_rss_mb"},
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "rounds": runs}


def compare(results: dict[str, dict]) -> dict:
    """Per measurement: tunewright / peer. Speed ratios are taken per round (the two runs of a round are
    adjacent in time, so they share the machine's load) and their median is reported."""
    out = {}
    for m, (ours, peer, goal) in MEASUREMENTS.items():
        if ours not in results or peer not in results:
            continue
        a, b = results[ours]["rounds"], results[peer]["rounds"]
        wall = [x["samples_per_s"] / y["samples_per_s"] for x, y in zip(a, b)]
        cpu = [x["samples_per_cpu_s"] / y["samples_per_cpu_s"] for x, y in zip(a, b)]
        r = median(wall)
        out[m] = {"tunewright": ours, "peer": peer, "goal": goal, "speed_ratio": round(r, 3),
                  "speed_ratio_rounds": [round(x, 3) for x in wall], "cpu_speed_ratio": round(median(cpu), 3),
                  "goal_met": r >= goal,
                  "rss_ratio": round(results[ours]["peak_rss_mb"] / results[peer]["peak_rss_mb"], 3)}
    return out


def environment() -> dict:
    import torch
    import transformers
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"date": _dt.date.today().isoformat(), "cpu": cpu, "cpu_cores": os.cpu_count(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def run_order(variants, round_index: int) -> list[str]:
    """Each measurement's pair back to back; the pair's order flips every round to cancel drift."""
    order = []
    for ours, peer, _ in MEASUREMENTS.values():
        pair = [v for v in (ours, peer) if v in variants]
        order += pair if round_index % 2 == 0 else pair[::-1]
    return order


def run_benchmark(cfg: BenchConfig, variants=VARIANTS, subprocesses: bool = True, rounds: int = 1,
                  settle_s: float = 0.0) -> dict:
    """The core function: every variant `rounds` times (child processes by default), ratios, environment.
    `settle_s`: before each child, wait up to this long for other processes to leave the CPUs mostly idle."""
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(rounds):
        for v in run_order(variants, r):
            print(f"[bench] round {r + 1}/{rounds}: {v} ...", file=sys.stderr, flush=True)
            res = run_child(v, cfg, settle_s) if subprocesses else run_variant(v, cfg)
            runs[v].append(res)
            print(f"[bench]   {res['samples_per_s']:.2f} samples/s ({res['samples_per_cpu_s']:.2f} per CPU-s), "
                  f"peak RSS {res['peak_rss_mb']:.0f} MB, other processes used {res['others_cpu_share']:.0%} of the CPUs",
                  file=sys.stderr, flush=True)
    digests = {x["rows_digest"] for rs in runs.values() for x in rs}
    if len(digests) != 1:
        raise RuntimeError(f"variants trained on different rows: { {v: rs[0]['rows_digest'] for v, rs in runs.items()} }")
    results = {v: summarize(rs) for v, rs in runs.items()}
    return {"config": {**dataclasses.asdict(cfg), "rows": cfg.rows}, "environment": environment(), "subprocesses": subprocesses,
            "rounds": rounds, "settle_s": settle_s, "results": results, "comparisons": compare(results)}


def markdown(report: dict) -> str:
    res, cmp_ = report["results"], report["comparisons"]
    rows = ["| measurement | variant | samples/s | vs peer | samples/CPU-s | vs peer | peak RSS (MB) | RSS vs peer "
            "| mean padded len | trainable params | others' CPU |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m, (ours, peer, _goal) in MEASUREMENTS.items():
        c = cmp_.get(m)
        for v in (ours, peer):
            if v not in res:
                continue
            r, mine = res[v], c is not None and v == ours
            ratio = (lambda key: f"**{c[key]:.2f}x**" if mine else ("1.00x" if c else ""))
            label = {"A": "A. fixed shape", "B": "B. defaults"}[m]
            others = ", ".join(f"{x['others_cpu_share']:.0%}" for x in r["rounds"])
            rows.append(f"| {label} | {v} | {r['samples_per_s']:.2f} | {ratio('speed_ratio')} | "
                        f"{r['samples_per_cpu_s']:.2f} | {ratio('cpu_speed_ratio')} | {r['peak_rss_mb']:.0f} | "
                        f"{ratio('rss_ratio')} | {r['mean_padded_len']:.0f} | {r['trainable_params']:,} | "
                        f"{others} |")
    goals = [f"- {m}: {c['tunewright']} / {c['peer']} = {c['speed_ratio']:.2f}x samples/s "
             f"(per round: {', '.join(f'{x:.2f}' for x in c['speed_ratio_rounds'])}; goal >= {c['goal']:.2f}x): "
             f"**{'met' if c['goal_met'] else 'NOT met'}**" for m, c in cmp_.items()]
    busy = max((x["others_cpu_share"] for r in res.values() for x in r["rounds"]), default=0.0)
    if busy > 0.25:
        goals.append(f"- Other processes used up to {busy:.0%} of the CPUs during some timed steps (column "
                     f"\"others' CPU\", one figure per round): with 2 torch threads on 2 cores every parallel region "
                     f"then waits for a descheduled thread, so those rounds measure kernel count more than FLOPs.")
    return "\n".join(rows + [""] + goals)


METHOD_NOTES = """\
What is measured (see the docstring of `bench_trainer.py` for the details):

- The same job for every variant: the same stratified subset of Reuters-R8 train (tunewright's own
  `subset_indices`; a digest of the rows is checked to be equal across variants), batch 32,
  max_length 128, AdamW at the same LR and weight decay (none on biases / LayerNorm), linear decay
  without warmup, gradient clipping at 1.0, fp32, 2 torch threads, the same seed.
- **samples/s** counts only the timed steps: from the end of the last warmup step to the end of the
  last step, batching included, model loading and tokenization excluded. **samples/CPU-s** divides by
  the process's CPU time over the same window instead; it moves less when other jobs share the
  2 cores, so it is the cross-check when the wall-clock ratio looks odd. Ratios are tunewright / peer,
  taken per round (the two runs of a pair run back to back, their order flipping every round) and
  then the median over rounds.
- **peak RSS** is the child process's peak resident memory up to the last timed step (each variant
  runs in its own process). `tunewright.train` then evaluates and writes the model and a checkpoint,
  which the Trainer (save_strategy=no) does not; that part is left out of the figure on purpose and is
  in the JSON as `peak_rss_exit_mb`.
- **A. fixed shape**: tunewright's `fit()` on its own tokenized bundle, set up by `run.assemble` exactly
  as `tunewright.train` sets it up, with its collate wrapped to pad every batch to 128 tokens (bucketing
  off, it cannot change a fixed shape), against a hand-written loop (`for batch in DataLoader`,
  torch's default AdamW) over the same architecture: `AutoModel` without its pooler, masked mean
  pooling, dropout 0.1, a linear head. Both train exactly the same parameters, and both run torch's
  CPU allocator on huge pages (`THP_MEM_ALLOC_ENABLE=1`, which `import tunewright` sets), so A
  compares the loops alone.
- **B. defaults**: `tunewright.train(config, callbacks=[clock])`, i.e. dynamic padding plus length
  bucketing, against `transformers.Trainer` with its defaults (DataCollatorWithPadding pads each batch
  to its longest row, random sampler, no length grouping, `adamw_torch_fused`; use_cpu, report_to=none,
  save_strategy=no, no evaluation, torch's allocator without huge pages as it comes). The Trainer's model is `AutoModelForSequenceClassification`: the
  CLS pooler (a 384x384 dense layer and tanh) plus a linear head, where tunewright mean-pools
  all-MiniLM-L6-v2's token states (its sentence-transformers config says mean) into a linear head.
  So the Trainer trains 147,840 more parameters (0.7%); their compute per step is negligible next to
  the encoder's.
- **mean padded len** is tokens per row as the model saw them, padding included (counted by a hook on
  the word embeddings, the same way for every variant).
"""


def write_readme(report: dict, command: str, path: Path) -> None:
    env, cfg = report["environment"], report["config"]
    loads = "; ".join(f"{v} " + ", ".join(f"{x['loadavg_1m'][0]}->{x['loadavg_1m'][1]}" for x in r["rounds"])
                      for v, r in report["results"].items())
    section = "\n".join([
        README_START,
        "## Peer benchmark: tunewright vs a hand-written loop and the HF Trainer (issue #2)",
        "",
        "```",
        command,
        "```",
        "",
        f"{env['date']}; {env['cpu_cores']} CPU cores ({env['cpu']}), torch {env['torch']}, transformers "
        f"{env['transformers']}, Python {env['python']}; fp32, {cfg['threads']} torch threads; {cfg['model']} on "
        f"{cfg['rows']} rows of {cfg['dataset']} train, batch {cfg['batch_size']}, max_length {cfg['max_length']}; "
        f"{cfg['steps']} timed steps after {cfg['warmup']} warmup steps per run; {report['rounds']} round(s), "
        f"each variant in its own process. Raw numbers: `benchmarks/results/trainer_bench.json`.",
        "",
        markdown(report),
        "",
        f"1-minute load average at the start -> end of each run (other jobs share this machine): {loads}.",
        "",
        METHOD_NOTES.rstrip(),
        README_END,
    ])
    text = path.read_text() if path.exists() else ""
    if README_START in text and README_END in text:
        text = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + ("\n\n" if text else "# Benchmarks\n\n") + section + "\n"
    path.write_text(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = BenchConfig()
    for f in dataclasses.fields(BenchConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(d, f.name)), default=getattr(d, f.name))
    p.add_argument("--quick", action="store_true", help="3 timed steps after 1 warmup; README left alone")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    p.add_argument("--rounds", type=int, default=2, help="run every variant this many times (pair order flips)")
    p.add_argument("--settle", type=float, default=60.0,
                   help="before each child, wait up to this many seconds for other processes to quiet down")
    p.add_argument("--in-process", action="store_true", help="run the variants in this process (RSS then accumulates)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/trainer_bench[_quick].json)")
    p.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    p.add_argument("--variant", help=argparse.SUPPRESS)        # child mode: run one variant
    p.add_argument("--child-json", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    cfg = BenchConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(BenchConfig)})
    if a.quick:
        cfg = dataclasses.replace(cfg, steps=3, warmup=1)
        a.rounds, a.settle = 1, 0.0
    if a.variant:
        Path(a.child_json).write_text(json.dumps(run_variant(a.variant, cfg)))
        return 0
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    report = run_benchmark(cfg, variants, subprocesses=not a.in_process, rounds=a.rounds, settle_s=a.settle)
    out = a.out or HERE / "results" / ("trainer_bench_quick.json" if a.quick else "trainer_bench.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_trainer.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report["command"] = command.strip()
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    print(table)
    if not a.quick and not a.no_readme:
        write_readme(report, report["command"], HERE / "README.md")
    print(f"[bench] wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
