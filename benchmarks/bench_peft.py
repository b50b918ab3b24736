"""Parameter-efficient methods, measured: writes the tables of docs/peft.md.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_peft.py            # default: about 30-40 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_peft.py --full     # full R8 train set for every method (hours)
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_peft.py --only curve        # time-to-accuracy race (~1 h)

Sections (each job runs in its own child process, so peak RSS is that job's alone; results go to
benchmarks/results/peft/<job>.json and the tables into docs/peft.md between markers):

- methods: MiniLM on Reuters-R8, one run per method through `tunewright.run.train` (the CLI's
  path): test accuracy and macro-F1 on the FULL R8 test set (2,189 docs), trainable parameters and
  their share, train time per epoch, peak RSS. Default: a seeded stratified subset of the train set
  (`--train-rows`, 800) for 3 epochs, because 8 methods x full R8 x 3 epochs is hours on this CPU.
- lm: SmolLM2-135M-Instruct on Friends transcripts (domain adaptation): held-out perplexity of the
  base model, then after lora, prompt_tuning and prefix_tuning, each trained on the same lines.
- peer: tunewright LoRA against HF Trainer + peft LoRA.
  * throughput: the same job (MiniLM, LoRA r=8 on query/value, batch 32, max_length 128, the same
    R8 rows, AdamW, lr 5e-4), each tool with its defaults, 20 timed steps (`--steps`) after 2 warmup
    steps, all inside tunewright's first epoch: samples/s and peak RSS.
  * time to accuracy: the usual recipe (Trainer + peft LoRA r=8 on query/value, lr 5e-4, batch 32,
    max_length 128, 2 epochs, linear schedule with 6% warmup, AutoModelForSequenceClassification's
    CLS-pooler head) against tunewright's LoRA defaults (`method: lora`, everything else default),
    both on the full R8 train set, test accuracy on the full test set every half epoch. The wall time
    axis is training time: the curve's own test evaluations are timed and subtracted (a run's own
    validation, part of tunewright's defaults, is not).
- latency: MiniLM forward latency, base vs LoRA merged vs LoRA unmerged, batch 32 of R8 test docs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = Path(os.environ.get("TW_BENCH_RESULTS", HERE / "results" / "peft"))
DOC = REPO / "docs" / "peft.md"
METHODS = ["full", "lora", "adalora", "prompt_tuning", "prefix_tuning", "adapter", "bitfit", "ia3"]
LM_METHODS = ["lora", "prompt_tuning", "prefix_tuning"]
THREADS = 2
# Elsewhere than this machine (a GPU box without the asset packages): a MiniLM HF folder and a folder with
# r8-train.csv / r8-test.csv (text,label) stand in for the packaged model and dataset.
MINILM = os.environ.get("TW_BENCH_MINILM")
R8_DIR = os.environ.get("TW_BENCH_R8")
SETTINGS: dict = {}     # --set key=value: config overrides for every tunewright run (exploratory runs)


def minilm_path() -> str:
    if MINILM:
        return MINILM
    from tunewright.assets.models import get_model_asset
    return str(get_model_asset("minilm").prepare())


def device():
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---- shared helpers ---------------------------------------------------------------------------

def r8_config(method: str, out: str, run_name: str, **over) -> dict:
    data = {"train": f"{R8_DIR}/r8-train.csv", "test": f"{R8_DIR}/r8-test.csv"} if R8_DIR else {"train": "reuters-r8"}
    cfg = {"run_name": run_name, "output_dir": out, "task": "classification", "model": {"name": MINILM or "minilm"},
           "data": data, "train": {"num_threads": THREADS, "progress": "plain"},
           "checkpoint": {"keep_last": 1}}
    if method == "full":
        cfg["train"]["lr"] = 5e-5
    else:
        cfg["method"] = method
    if method == "adapter":
        cfg["adapter"] = {"kind": "houlsby"}
    for key, value in {**SETTINGS, **over}.items():  # "data.train_subset": 800; a job's own keys win
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg


class TestCurve:
    """Test accuracy every `every` optimizer steps; its own evaluation time is subtracted from the clock."""

    def __init__(self, test_set, collate, every: int, batch_size: int = 128):
        # Length-sorted order: the same numbers, less padding, a faster curve.
        self.order = sorted(range(len(test_set)), key=lambda i: len(test_set[i]["input_ids"]))
        self.test_set, self.collate, self.every, self.batch_size = test_set, collate, every, batch_size
        self.t0, self.eval_seconds, self.points = None, 0.0, []

    def on_fit_start(self, ctx) -> None:
        self.t0 = time.perf_counter()
        self.record(ctx.model, 0)              # the starting point: a random head, or a warm-started one

    def shift(self, seconds: float) -> None:
        """Add time spent before the loop (the head warm start: summary's prepare_seconds) to every point."""
        for p in self.points:
            p["train_seconds"] = round(p["train_seconds"] + seconds, 1)

    def on_step_end(self, ctx) -> None:
        if ctx.state.step % self.every == 0 or ctx.state.step == ctx.state.total_steps:
            self.record(ctx.model, ctx.state.step)

    def record(self, model, step: int) -> None:
        import numpy as np
        import torch
        from tunewright.training.loop import to_device
        start = time.perf_counter()
        was = model.training
        model.eval()
        preds, labels = [], []
        dev = next(model.parameters()).device
        with torch.no_grad():
            for s in range(0, len(self.order), self.batch_size):
                batch = self.collate([self.test_set[i] for i in self.order[s:s + self.batch_size]])
                preds.append(model(to_device(batch, dev)).argmax(-1).cpu().numpy())
                labels.append(batch["labels"].numpy())
        model.train(was)
        acc = float((np.concatenate(preds) == np.concatenate(labels)).mean())
        end = time.perf_counter()
        wall = end - self.t0 - self.eval_seconds - (end - start)
        self.eval_seconds += end - start
        self.points.append({"step": step, "train_seconds": round(wall, 1), "test_accuracy": round(acc, 4)})
        print(f"curve: step {step} t={wall:.0f}s acc={acc:.4f}", flush=True)


# ---- jobs (each runs in a child process) ------------------------------------------------------

def job_method(method: str, full: bool, train_rows: int) -> dict:
    from tunewright.run import train
    with tempfile.TemporaryDirectory() as out:
        over = {} if full else {"data.train_subset": train_rows}
        result = train(r8_config(method, out, method, **over))
        s = result.summary
    return {"method": method, "train_rows": s["sizes"]["train"], "test_rows": s["sizes"]["test"],
            "epochs": s["epochs_run"], "test_accuracy": s["test"]["accuracy"], "test_macro_f1": s["test"]["macro_f1"],
            "trainable_params": s["trainable_params"], "total_params": s["total_params"],
            "trainable_share": s["trainable_share"], "train_seconds": s["train_seconds"],
            "seconds_per_epoch": s["train_seconds"] / max(s["epochs_run"], 1e-9),
            "peak_rss_mb": round(peak_rss_mb(), 1), "best_epoch": s["best_epoch"]}


def friends_files(folder: Path, train_rows: int, test_rows: int, val_rows: int = 100) -> dict:
    """Seeded disjoint samples of Friends lines as JSONL: train, val and test (held out)."""
    import numpy as np
    from tunewright.assets.datasets import get_dataset
    lines = [t for t in get_dataset("friends").load()["train"]["text"] if len(t.split()) >= 4]
    order = np.random.default_rng(0).permutation(len(lines))
    parts = {"train": order[:train_rows], "val": order[train_rows:train_rows + val_rows],
             "test": order[train_rows + val_rows:train_rows + val_rows + test_rows]}
    paths = {}
    for split, idx in parts.items():
        paths[split] = str(folder / f"friends-{split}.jsonl")
        with open(paths[split], "w") as f:
            for i in idx:
                f.write(json.dumps({"text": lines[i]}) + "\n")
    return paths


def lm_config(method: str, out: str, files: dict) -> dict:
    return {"run_name": method, "output_dir": out, "task": "causal_lm", "model": {"name": "smollm2-135m"},
            "method": method, "data": {**files, "max_length": 48},
            "train": {"epochs": 1, "batch_size": 16, "num_threads": THREADS, "progress": "plain"},
            "prompt_tuning": {"init_text": "Lines of dialogue from the TV show Friends:"},
            "prefix_tuning": {"init_text": "Lines of dialogue from the TV show Friends:"},
            "checkpoint": {"keep_last": 1}}


def job_lm(method: str, full: bool, train_rows: int) -> dict:
    from tunewright.config.load import config_from_dict
    from tunewright.evaluate import evaluate_dataset
    from tunewright.run import prepare, train
    from tunewright.training.precision import resolve_precision
    with tempfile.TemporaryDirectory() as out:
        files = friends_files(Path(out), 8000 if full else train_rows, 1000 if full else 300)
        cfg = config_from_dict(lm_config(method, out, files))
        before = None
        if method == LM_METHODS[0]:                      # the base model's perplexity, once
            _, model, _, bundle = prepare(cfg)
            before = evaluate_dataset(model, bundle.test, bundle.collate, "causal_lm", None, 32,
                                      resolve_precision("fp32", "cpu"))["perplexity"]
            del model
        s = train(cfg).summary
    return {"method": method, "train_lines": s["sizes"]["train"], "test_lines": s["sizes"]["test"],
            "perplexity_before": before, "perplexity_after": s["test"]["perplexity"],
            "trainable_params": s["trainable_params"], "trainable_share": s["trainable_share"],
            "train_seconds": s["train_seconds"], "peak_rss_mb": round(peak_rss_mb(), 1)}


def r8_texts():
    if R8_DIR:
        import pandas as pd
        return pd.read_csv(f"{R8_DIR}/r8-train.csv"), pd.read_csv(f"{R8_DIR}/r8-test.csv")
    from tunewright.assets.datasets import get_dataset
    frames = get_dataset("reuters-r8").load()
    return frames["train"], frames["test"]


def job_tw_curve(full: bool, train_rows: int) -> dict:
    """tunewright's LoRA defaults on the full R8 train set, test accuracy every half epoch."""
    from transformers import AutoTokenizer
    from tunewright.config.load import config_from_dict
    from tunewright.data import build_data, read_data
    from tunewright.run import train
    with tempfile.TemporaryDirectory() as out:
        cfg = config_from_dict(r8_config("lora", out, "curve"))
        # The curve's own copy of the tokenized test set (the run builds its own; no second model).
        tok = AutoTokenizer.from_pretrained(minilm_path())
        bundle = build_data(read_data(cfg), tok, cfg)
        steps_per_epoch = -(-len(bundle.train) // cfg.train.batch_size)
        curve = TestCurve(bundle.test, bundle.collate, every=max(1, steps_per_epoch // 2))
        t0 = time.perf_counter()
        s = train(cfg, callbacks=[curve]).summary
        wall = time.perf_counter() - t0 - curve.eval_seconds
        curve.shift(s["prepare_seconds"])
    return {"tool": "tunewright", "recipe": "method: lora (defaults)", "points": curve.points,
            "final_test_accuracy": s["test"]["accuracy"], "final_test_macro_f1": s["test"]["macro_f1"],
            "train_seconds": round(s["prepare_seconds"] + s["train_seconds"] - curve.eval_seconds, 1),
            "prepare_seconds": s["prepare_seconds"], "wall_seconds": round(wall, 1),
            "epochs": s["epochs_run"], "peak_rss_mb": round(peak_rss_mb(), 1)}


def _hf_lora_model(num_labels: int):
    import peft
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=num_labels,
                                                               dtype="float32")
    config = peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1,
                             target_modules=["query", "value"])
    return peft.get_peft_model(model, config)


def _hf_datasets(tok, max_length: int, train_df, test_df, labels):
    import torch

    class DS(torch.utils.data.Dataset):
        def __init__(self, df):
            enc = tok(list(df["text"]), truncation=True, max_length=max_length)
            self.ids, self.y = enc["input_ids"], [labels.index(v) for v in df["label"]]

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "attention_mask": [1] * len(self.ids[i]), "labels": self.y[i]}
    return DS(train_df), DS(test_df)


def job_trainer_curve(full: bool, train_rows: int, steps: int | None = None) -> dict:
    """The usual HF Trainer + peft LoRA recipe, with the same half-epoch test curve."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
    torch.set_num_threads(THREADS)
    train_df, test_df = r8_texts()
    labels = sorted(set(train_df["label"]))
    tok = AutoTokenizer.from_pretrained(minilm_path())
    train_ds, test_ds = _hf_datasets(tok, 128, train_df, test_df, labels)
    model = _hf_lora_model(len(labels))
    collate = DataCollatorWithPadding(tok)
    steps_per_epoch = -(-len(train_ds) // 32)

    class Curve(TrainerCallback):
        def __init__(self):
            self.t0, self.eval_seconds, self.points = None, 0.0, []
            self.order = sorted(range(len(test_ds)), key=lambda i: len(test_ds[i]["input_ids"]))

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()
            self.record(0)

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % max(1, steps_per_epoch // 2) == 0 or state.global_step == state.max_steps:
                self.record(state.global_step)

        def record(self, step: int) -> None:
            start = time.perf_counter()
            model.eval()
            preds, ys = [], []
            with torch.no_grad():
                for s in range(0, len(self.order), 128):
                    batch = collate([test_ds[i] for i in self.order[s:s + 128]])
                    ys.append(batch.pop("labels").numpy())
                    batch = {k: v.to(model.device) for k, v in batch.items()}
                    preds.append(model(**batch).logits.argmax(-1).cpu().numpy())
            model.train()
            acc = float((np.concatenate(preds) == np.concatenate(ys)).mean())
            end = time.perf_counter()
            wall = end - self.t0 - self.eval_seconds - (end - start)
            self.eval_seconds += end - start
            self.points.append({"step": step, "train_seconds": round(wall, 1), "test_accuracy": round(acc, 4)})
            print(f"curve: step {step} t={wall:.0f}s acc={acc:.4f}", flush=True)

    curve = Curve()
    with tempfile.TemporaryDirectory() as out:
        import inspect
        warm = ({"warmup_ratio": 0.06} if "warmup_ratio" in inspect.signature(TrainingArguments).parameters
                else {"warmup_steps": 0.06})           # transformers 5.x: a float warmup_steps is a ratio
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=32, learning_rate=5e-4, **warm,
                                 num_train_epochs=2, lr_scheduler_type="linear",
                                 weight_decay=0.01, logging_steps=10, save_strategy="no", report_to="none",
                                 seed=42, use_cpu=device().type == "cpu", dataloader_num_workers=0, disable_tqdm=True,
                                 max_steps=steps or -1)
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collate,
                          callbacks=[curve])
        t0 = time.perf_counter()
        out_train = trainer.train()
        wall = time.perf_counter() - t0 - curve.eval_seconds
    final = curve.points[-1]["test_accuracy"] if curve.points else None
    return {"tool": "hf_trainer+peft", "recipe": "LoRA r=8 q/v, lr 5e-4, bs 32, len 128, 2 epochs, 6% warmup, "
            "CLS pooler head", "points": curve.points, "final_test_accuracy": final,
            "train_seconds": round(out_train.metrics["train_runtime"] - curve.eval_seconds, 1),
            "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def throughput_rows(steps: int, warmup: int) -> int:
    """R8 rows for a throughput job: after the 10% validation hold-out, one epoch outlasts the steps."""
    rows = -(-(steps + warmup) * 32 * 10 // 9) + 32
    if rows > 5485:
        raise ValueError(f"--steps {steps}: at most 150 timed steps fit in one epoch of R8's 5,485 train rows")
    return rows


def job_throughput(tool: str, steps: int = 20, warmup: int = 2) -> dict:
    """The same LoRA job for `steps` timed optimizer steps; samples/s over the timed steps only.

    Both tools get the same rows. tunewright holds 10% of them out for validation, so there are enough
    rows for all steps to fall inside its first epoch: the timed window holds training steps only, not
    the checkpoint tunewright writes at an epoch's end (the Trainer job saves nothing).
    """
    import torch
    rows = throughput_rows(steps, warmup)
    if tool == "tunewright":
        from tunewright.run import train
        clock = {"t": []}

        class Clock:
            def on_step_end(self, ctx):
                clock["t"].append(time.perf_counter())
                clock["rss"] = peak_rss_mb()          # up to the last timed step (evaluation and saving after)
        with tempfile.TemporaryDirectory() as out:
            train(r8_config("lora", out, "tp", **{"data.train_subset": rows, "data.test_subset": 64,
                                                  "train.precision": "fp32",
                                                  "lora.target_modules": ["query", "value"], "lora.dropout": 0.1,
                                                  "data.max_length": 128, "model.attention_dropout": None,
                                                  "train.max_steps": steps + warmup, "train.warmup_ratio": 0.0,
                                                  "train.eval_every_steps": 10 ** 6}), callbacks=[Clock()])
        t, rss_train = clock["t"], clock["rss"]
    else:
        from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
        from tunewright.data.splits import subset_indices
        torch.set_num_threads(THREADS)
        train_df, test_df = r8_texts()
        keep, _ = subset_indices(len(train_df), list(train_df["label"]), rows, 42)
        labels = sorted(set(train_df["label"]))
        tok = AutoTokenizer.from_pretrained(minilm_path())
        train_ds, _ = _hf_datasets(tok, 128, train_df.iloc[sorted(keep)], test_df.iloc[:1], labels)
        model = _hf_lora_model(len(labels))
        t, rss = [], {}

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                t.append(time.perf_counter())
                rss["train"] = peak_rss_mb()
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(output_dir=out, per_device_train_batch_size=32, learning_rate=5e-4,
                                     max_steps=steps + warmup, save_strategy="no", report_to="none", seed=42,
                                     use_cpu=device().type == "cpu", disable_tqdm=True, logging_steps=10 ** 6)
            Trainer(model=model, args=args, train_dataset=train_ds, data_collator=DataCollatorWithPadding(tok),
                    callbacks=[Clock()]).train()
        rss_train = rss["train"]
    seconds = t[-1] - t[warmup - 1]
    # Peak RSS up to the last timed step, the same point for both tools: tunewright.train then evaluates
    # and saves, which the Trainer job (save_strategy=no, no eval) does not; that is peak_rss_exit_mb.
    return {"tool": tool, "timed_steps": steps, "samples_per_s": round(steps * 32 / seconds, 2),
            "seconds": round(seconds, 1), "peak_rss_mb": round(rss_train, 1), "peak_rss_exit_mb": round(peak_rss_mb(), 1)}


def job_latency(reps: int = 7) -> dict:
    """Median forward time of 10 batches of 32 test docs: base, LoRA unmerged, LoRA merged."""
    import copy
    import statistics
    import torch
    from tunewright.config.load import config_from_dict
    from tunewright.peft import apply_method, merge_report, merged_model
    from tunewright.run import prepare
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as out:
        cfg = config_from_dict(r8_config("lora", out, "lat", **{"data.test_subset": 320}))
        _, base, _, bundle = prepare(cfg)
    base.eval().to(device())
    lora = copy.deepcopy(base)
    apply_method(lora, cfg)
    with torch.no_grad():                           # a trained-looking adapter: B no longer zero
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    lora.eval()
    from tunewright.training.loop import to_device
    batches = [to_device(bundle.collate([bundle.test[i] for i in range(s, s + 32)]), device()) for s in range(0, 320, 32)]
    merged = copy.deepcopy(lora)
    report = merge_report(merged, batches[0])       # merged in place: peft's wrapper layers stay
    exported = merged_model(copy.deepcopy(merged))  # what `tunewright merge` writes: the base architecture

    def timed(model) -> float:
        with torch.no_grad():
            model(batches[0])                       # warm (kernels, caches)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            for b in batches:
                model(b)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter() - start
    times = {"base": [], "lora_unmerged": [], "lora_merged": [], "lora_merged_exported": []}
    for _ in range(reps):                           # interleaved, so drift in machine load hits all alike
        for name, model in (("base", base), ("lora_unmerged", lora), ("lora_merged", merged),
                            ("lora_merged_exported", exported)):
            times[name].append(timed(model))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"median_seconds_per_320_docs": {k: round(v, 3) for k, v in med.items()},
            "merged_vs_base": round(med["lora_merged"] / med["base"], 3),
            "exported_vs_base": round(med["lora_merged_exported"] / med["base"], 3),
            "unmerged_vs_base": round(med["lora_unmerged"] / med["base"], 3), "drift": report}


JOBS = {"latency": lambda a: job_latency(), "throughput:tunewright": lambda a: job_throughput("tunewright", a.steps),
        "throughput:hf_trainer": lambda a: job_throughput("hf_trainer", a.steps),
        "curve:tunewright": lambda a: job_tw_curve(a.full, a.train_rows),
        "curve:hf_trainer": lambda a: job_trainer_curve(a.full, a.train_rows),
        **{f"method:{m}": (lambda a, m=m: job_method(m, a.full, a.train_rows)) for m in METHODS},
        **{f"lm:{m}": (lambda a, m=m: job_lm(m, a.full, a.lm_rows)) for m in LM_METHODS}}
SECTIONS = {"peer": ["throughput:tunewright", "throughput:hf_trainer", "latency"],
            "curve": ["curve:tunewright", "curve:hf_trainer"],
            "methods": [f"method:{m}" for m in METHODS], "lm": [f"lm:{m}" for m in LM_METHODS]}


def result_path(job: str, full: bool) -> Path:
    suffix = "-gpu" if os.environ.get("TW_BENCH_TAG") == "gpu" else ""
    return RESULTS / f"{job.replace(':', '-')}{'-full' if full else ''}{suffix}.json"


def run_job(job: str, args) -> None:
    cmd = [sys.executable, __file__, "--job", job, "--train-rows", str(args.train_rows), "--lm-rows",
           str(args.lm_rows), "--steps", str(args.steps)] + (["--full"] if args.full else []) + [f"--set={kv}" for kv in args.set]
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / f"{job.replace(':', '-')}.log"
    print(f"[{time.strftime('%H:%M:%S')}] {job} ...", flush=True)
    # The Trainer runs as it does out of the box: torch's CPU allocator without huge pages, which
    # the child's huge_pages.request() would otherwise turn on for it too (tunewright/huge_pages.py).
    env = {**os.environ, **({"THP_MEM_ALLOC_ENABLE": "0"} if "hf_trainer" in job else {})}
    with open(log, "w") as f:
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    print(f"[{time.strftime('%H:%M:%S')}] {job}: {'ok' if code == 0 else f'FAILED ({code}), see {log}'}", flush=True)


# ---- docs/peft.md ----------------------------------------------------------------------------

def _load(job: str, full: bool, tag: str = "") -> dict | None:
    path = RESULTS / f"{job.replace(':', '-')}{'-full' if full else ''}{tag}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _block(doc: str, name: str, body: str) -> str:
    start, end = f"<!-- bench_peft:{name}:start -->", f"<!-- bench_peft:{name}:end -->"
    if start not in doc:
        return doc + f"\n{start}\n{body}\n{end}\n"
    head, rest = doc.split(start, 1)
    return head + start + "\n" + body + "\n" + end + rest.split(end, 1)[1]


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


CMD = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_peft.py"
GPU_CMD = "bash benchmarks/bench_peft_gpu.sh   # on a CUDA machine; assets from bench_peft.py --export-assets .gpu-peft"


def _methods_table(rows: list[dict], cmd: str) -> str:
    r0 = rows[0]
    # Rows measured in different sessions (a GPU is lent minutes at a time) say when and where, each.
    stamps = [time.mktime(time.strptime(r["date"], "%Y-%m-%d %H:%M")) for r in rows]
    mixed = len({r.get("device") for r in rows}) > 1 or max(stamps) - min(stamps) > 3 * 3600
    where = "" if mixed else f", {r0.get('device', 'CPU')}, measured {r0['date']}"
    lines = [f"`{cmd}`", "", f"MiniLM (all-MiniLM-L6-v2) on Reuters-R8: {r0['train_rows']} train rows, "
             f"{r0['test_rows']} test docs (the full test set){where}.", "",
             "| method | test accuracy % | macro-F1 % | trainable params | share % | s / epoch | epochs | "
             "peak RSS MB |" + (" measured |" if mixed else ""), "|---|---|---|---|---|---|---|---|" + ("---|" if mixed else "")]
    for r in rows:
        lines.append(f"| {r['method']} | {_pct(r['test_accuracy'])} | {_pct(r['test_macro_f1'])} | "
                     f"{r['trainable_params']:,} | {_pct(r['trainable_share'])} | {r['seconds_per_epoch']:.1f} | "
                     f"{r['epochs']:g} | {r['peak_rss_mb']:.0f} |" +
                     (f" {r.get('device', 'CPU').replace('NVIDIA ', '')}, {r['date']} |" if mixed else ""))
    return "\n".join(lines)


def _throughput_table(tw: dict, hf: dict, cmd: str) -> str:
    return "\n".join([
        f"`{cmd}`", "", "Same job: MiniLM, LoRA r=8 on query/value, LoRA dropout 0.1, the model's own dropout "
        "(attention 0.1) in both, the same R8 rows, batch 32, "
        f"max_length 128, lr 5e-4, fp32, {tw['timed_steps']} timed steps after 2 warmup steps, each tool with its "
        f"data defaults, each in its own process; {tw.get('device', 'CPU')}, measured {tw['date']}.", "",
        "Peak RSS is taken at the last timed step (tunewright then evaluates and saves; the Trainer job does "
        "neither).", "",
        "| tool | samples/s | peak RSS MB |", "|---|---|---|",
        f"| tunewright | {tw['samples_per_s']:.1f} | {tw['peak_rss_mb']:.0f} |",
        f"| HF Trainer + peft | {hf['samples_per_s']:.1f} | {hf['peak_rss_mb']:.0f} |",
        f"| ratio (goal: >= 1.2x, RSS <= 1.0x) | {tw['samples_per_s'] / hf['samples_per_s']:.2f}x | "
        f"{tw['peak_rss_mb'] / hf['peak_rss_mb']:.2f}x |"])


def _curve_table(curves: list[dict], cmd: str, plot: Path | None) -> str:
    lines = [f"`{cmd}`", "", f"{curves[0].get('device', 'CPU')}, measured {curves[0]['date']}.", "",
             "| tool | recipe | final test accuracy % | first >= 97.5% at (s) | train s | peak RSS MB |",
             "|---|---|---|---|---|---|"]
    for c in curves:
        hit = next((pt["train_seconds"] for pt in c["points"] if pt["test_accuracy"] >= 0.975), None)
        lines.append(f"| {c['tool']} | {c['recipe']} | {_pct(c['final_test_accuracy'])} | "
                     f"{'never' if hit is None else f'{hit:.0f}'} | {c['train_seconds']:.1f} | {c['peak_rss_mb']:.0f} |")
    width = max(len(c["points"]) for c in curves)
    lines += ["", "Test accuracy on the full R8 test set against training wall time, at the start (step 0; "
              "tunewright's time there is its head warm start, `prepare_seconds`) and every half epoch:", "",
              "| tool | " + " | ".join(["s: acc %"] * width) + " |", "|---|" + "---|" * width]
    for c in curves:
        cells = [f"{pt['train_seconds']:.1f}: {_pct(pt['test_accuracy'])}" for pt in c["points"]]
        lines.append(f"| {c['tool']} | " + " | ".join(cells + [""] * (width - len(cells))) + " |")
    if plot:
        lines += ["", f"![test accuracy against training wall time]({plot.name})"]
    return "\n".join(lines)


def _latency_table(lat: dict, cmd: str) -> str:
    m = lat["median_seconds_per_320_docs"]
    return "\n".join([
        f"`{cmd}`", "", f"Median of 7 interleaved repetitions of 10 batches of 32 R8 test docs; "
        f"{lat.get('device', 'CPU')}, measured {lat['date']}.", "",
        "| model | seconds / 320 docs | vs base |", "|---|---|---|",
        f"| base MiniLM | {m['base']:.3f} | 1.00x |",
        f"| LoRA r=8 on every linear layer, unmerged | {m['lora_unmerged']:.3f} | {lat['unmerged_vs_base']:.2f}x |",
        f"| the same LoRA, merged (peft's wrappers kept) | {m['lora_merged']:.3f} | {lat['merged_vs_base']:.2f}x |",
        *([f"| the same LoRA, merged and exported (`tunewright merge`) | {m['lora_merged_exported']:.3f} | "
           f"{lat['exported_vs_base']:.2f}x |"] if "lora_merged_exported" in m else []), "",
        f"Drift report of that merge: max |logit difference| = {lat['drift']['max_abs_logit_diff']:.2g} "
        f"(largest |logit| {lat['drift']['max_abs_logit']:.2g})."])


def render(args) -> None:
    doc = DOC.read_text() if DOC.is_file() else "# Parameter-efficient fine-tuning\n"
    for tag, cmd_of in (("", lambda extra: f"{CMD} {extra}".strip()), ("-gpu", lambda extra: GPU_CMD)):
        for full in (False, True):
            rows = [r for r in (_load(f"method:{m}", full, tag) for m in METHODS) if r]
            if rows:
                rows_arg = rows[0].get("train_rows_arg", rows[0]["train_rows"])   # asked for, before the val split
                extra = "--only methods --full" if full else f"--only methods --train-rows {rows_arg}"
                doc = _block(doc, f"methods{'-full' if full else ''}{tag}", _methods_table(rows, cmd_of(extra)))
        tw, hf = _load("throughput:tunewright", False, tag), _load("throughput:hf_trainer", False, tag)
        if tw and hf:
            doc = _block(doc, f"throughput{tag}", _throughput_table(tw, hf, cmd_of("--only peer")))
        curves = [c for c in (_load("curve:tunewright", False, tag), _load("curve:hf_trainer", False, tag)) if c]
        if curves:
            doc = _block(doc, f"curve{tag}", _curve_table(curves, cmd_of("--only curve"), _plot(curves, tag)))
        lat = _load("latency", False, tag)
        if lat:
            doc = _block(doc, f"latency{tag}", _latency_table(lat, cmd_of("--only peer")))
    rows = [r for r in (_load(f"lm:{m}", False) for m in LM_METHODS) if r]
    if rows:
        before = next((r["perplexity_before"] for r in rows if r.get("perplexity_before")), None)
        lines = [f"`{CMD} --only lm --lm-rows {rows[0]['train_lines']}`", "",
                 f"SmolLM2-135M-Instruct on Friends transcripts: {rows[0]['train_lines']} train lines, 1 epoch, "
                 f"perplexity on {rows[0]['test_lines']} held-out lines; CPU, {THREADS} threads, measured "
                 f"{rows[0]['date']}.", "",
                 "| method | perplexity before | perplexity after | trainable params | share % | train s | "
                 "peak RSS MB |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['method']} | {before if before is None else f'{before:.2f}'} | "
                         f"{r['perplexity_after']:.2f} | {r['trainable_params']:,} | {_pct(r['trainable_share'])} | "
                         f"{r['train_seconds']:.0f} | {r['peak_rss_mb']:.0f} |")
        doc = _block(doc, "lm", "\n".join(lines))
    DOC.write_text(doc)
    print(f"written: {DOC}")


def _plot(curves, tag: str = "") -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    floor = 80.0          # the region that matters; a random head's step-0 point is drawn on the floor
    for c in curves:
        ax.plot([p["train_seconds"] for p in c["points"]],
                [max(floor, 100 * p["test_accuracy"]) for p in c["points"]], marker="o", label=c["tool"])
    ax.axhline(97.5, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(floor - 0.5, 100)
    ax.set_xlabel(f"training wall time (s), {curves[0].get('device', 'CPU')}")
    ax.set_ylabel(f"R8 test accuracy (%, below {floor:.0f} drawn at {floor:.0f})")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = DOC.parent / f"peft_time_to_accuracy{tag}.png"
    fig.savefig(path, dpi=110)
    return path


def export_assets(folder: Path) -> None:
    """MiniLM's folder with its weights in fp16 (upcast to fp32 again when loaded) and R8 as text,label CSVs."""
    import shutil
    from safetensors.torch import load_file, save_file
    from tunewright.assets.datasets import get_dataset
    src, dst = Path(minilm_path()), folder / "minilm"
    for f in src.rglob("*"):
        rel = f.relative_to(src)
        if f.is_file() and f.name != "model.safetensors" and not any(x in str(rel) for x in ("onnx", "openvino")):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst / rel)
    state = load_file(str(src / "model.safetensors"))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(dst / "model.safetensors"),
              metadata={"format": "pt"})
    frames = get_dataset("reuters-r8").load()
    for split in ("train", "test"):
        frames[split][["text", "label"]].to_csv(folder / f"r8-{split}.csv", index=False)
    print(f"written: {folder}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="Full R8 train set for every method (hours on a CPU).")
    p.add_argument("--only", default="peer,methods,lm", help="Sections: peer, curve, methods, lm (comma-separated). "
                   "curve (the time-to-accuracy race on full R8) takes about 1 h on 2 uncontended cores.")
    p.add_argument("--skip-done", action="store_true", help="Skip jobs whose result file exists.")
    p.add_argument("--train-rows", type=int, default=800, help="R8 train rows per method (default mode).")
    p.add_argument("--steps", type=int, default=20, help="Timed optimizer steps of the throughput jobs (at most "
                   "150; a GPU needs about 100 for a window longer than a second).")
    p.add_argument("--lm-rows", type=int, default=800, help="Friends lines to train on (default mode).")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="A config override for every tunewright run (repeatable; YAML values), e.g. "
                   "--set lora.dropout=0.05. Recorded in the result files as `settings`.")
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--render", action="store_true", help="Only rewrite docs/peft.md from saved results.")
    p.add_argument("--export-assets", metavar="DIR", help="Write MiniLM (fp16, to fit a 64 MiB transfer) and R8 as "
                   "CSV into DIR, for bench_peft_gpu.sh on a machine without the asset packages.")
    args = p.parse_args()
    import yaml
    for kv in args.set:
        key, sep, value = kv.partition("=")
        if not sep:
            p.error(f"--set {kv!r}: expected KEY=VALUE")
        SETTINGS[key] = yaml.safe_load(value)
    if args.export_assets:
        export_assets(Path(args.export_assets))
        return 0
    if args.job:
        from tunewright import huge_pages
        huge_pages.request()                   # as the tunewright command does (a Trainer job's parent set 0)
        import torch
        torch.set_num_threads(THREADS)
        out = JOBS[args.job](args)
        from tunewright.huge_pages import active
        out["huge_pages"] = active()           # this child's torch allocator, checked after the job
        out.update(job=args.job, full=args.full, train_rows_arg=args.train_rows, settings=SETTINGS, date=time.strftime("%Y-%m-%d %H:%M"), threads=THREADS,
                   device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {THREADS} threads")
        result_path(args.job, args.full).write_text(json.dumps(out, indent=2))
        return 0
    if not args.render:
        for section in args.only.split(","):
            for job in SECTIONS[section.strip()]:
                if not (args.skip_done and result_path(job, args.full).is_file()):
                    run_job(job, args)
    render(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
