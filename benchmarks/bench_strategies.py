"""Fine-tuning strategies compared on real packaged tasks (issue #3); writes the tables in docs/strategies.md.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_strategies.py            # all tasks, ~25-35 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_strategies.py --tasks digits --no-docs   # one task

Tasks (every subset is stratified and seeded, seed 42, by tunewright's own `data.train_subset`):

- r8:      MiniLM (all-MiniLM-L6-v2, mean pooling) on Reuters-R8: 2,000 of the 5,485 training documents
           (1,800 train + 200 validation), max 128 tokens; the FULL official test set (2,189).
- fashion: EfficientNet-Lite0 (ImageNet) on Fashion-MNIST: 2,000 of the 60,000 training images
           (1,800 + 200 validation), 2,000 of the 10,000 test images; images resized to 128x128.
- digits:  EfficientNet-Lite0 on sklearn digits (1,797 8x8 images): 20% test (360), 10% of the rest
           validation; resized to 128x128.

Strategies: feature_extraction (10 epochs, on the feature cache); partial (the top 2 layer groups and
the head, 3 epochs, frozen prefix cached); gradual_unfreezing (ULMFiT: head first, one group more
per epoch, slanted triangular LR, discriminative LRs lr/2.6 per group, 4 epochs); lp_ft (linear
probe by L-BFGS, then full fine-tuning, 2 epochs); full (2 epochs). Every run is its own child
process (`tunewright train`), one after another, so peak RSS is that run's alone; wall time is the
whole process (model load, data, cache, training, evaluation).

Feature cache: feature_extraction for 10 epochs runs twice on `--cache-task` (default r8), back to
back, with the cache and without (`strategy_options.cache_features=false`); the table gives both.

Results: benchmarks/results/strategies.json, logs in runs/bench_strategies/logs/, and the tables
between the markers in docs/strategies.md (with this command above them).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from tunewright.machine import describe as describe_machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "strategies.md"
RESULTS = HERE / "results" / "strategies.json"
START, END = "<!-- bench_strategies:start -->", "<!-- bench_strategies:end -->"
COMMAND = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_strategies.py"

TASKS = {
    "r8": {"title": "MiniLM on Reuters-R8 (2,000 train docs, full 2,189-doc test set)",
           "base": ["task=classification", "model.name=minilm", "data.train=reuters-r8", "data.train_subset=2000",
                    "data.max_length=128", "train.batch_size=32"],
           "lr": {"feature_extraction": 3e-3, "partial": 1e-4, "gradual_unfreezing": 5e-4, "lp_ft": 1e-4,
                  "full": 1e-4}},
    "fashion": {"title": "EfficientNet-Lite0 on Fashion-MNIST (2,000 train, 2,000 test images, 128 px)",
                "base": ["task=image_classification", "model.name=efficientnet-lite0", "data.train=fashion-mnist",
                         "data.train_subset=2000", "data.test_subset=2000", "data.image_size=128",
                         "train.batch_size=32"],
                "lr": {"feature_extraction": 3e-3, "partial": 1e-3, "gradual_unfreezing": 2e-3, "lp_ft": 5e-4,
                       "full": 5e-4}},
    "digits": {"title": "EfficientNet-Lite0 on sklearn digits (1,293 train, 360 test images, 128 px)",
               "base": ["task=image_classification", "model.name=efficientnet-lite0", "data.train=digits",
                        "data.image_size=128", "train.batch_size=32"],
               "lr": {"feature_extraction": 3e-3, "partial": 1e-3, "gradual_unfreezing": 2e-3, "lp_ft": 5e-4,
                      "full": 5e-4}},
}

STRATEGIES = {
    "feature_extraction": ["strategy=feature_extraction", "train.epochs=10"],
    "partial": ["strategy=partial", "strategy_options.train_top=2", "train.epochs=3"],
    "gradual_unfreezing": ["strategy=gradual_unfreezing", "strategy_options.layer_lr=ulmfit",
                           "train.schedule=slanted_triangular", "train.epochs=4"],
    "lp_ft": ["strategy=lp_ft", "train.epochs=2"],
    "full": ["strategy=full", "train.epochs=2"],
}
LABEL = {"feature_extraction": "feature_extraction", "partial": "partial (top 2 groups)",
         "gradual_unfreezing": "gradual_unfreezing (ULMFiT: STLR, lr/2.6 per group)", "lp_ft": "lp_ft",
         "full": "full"}


def run_one(name: str, overrides: list[str], out_dir: Path) -> dict:
    """`tunewright train` in a child process; returns its summary plus the process wall time."""
    base = out_dir / "empty.yaml"                # every setting comes from the overrides below
    base.parent.mkdir(parents=True, exist_ok=True)
    base.write_text("{}\n")
    cmd = [sys.executable, "-m", "tunewright.cli.main", "train", "--overwrite", str(base),
           f"run_name={name}", f"output_dir={out_dir}", "train.progress=plain", "train.log_every_steps=20",
           "train.num_threads=2", *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(logs / f"{name}.log", "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}); see {logs / (name + '.log')}")
    summary = json.loads((out_dir / name / "summary.json").read_text())
    summary["wall_seconds"] = round(wall, 1)
    summary["overrides"] = overrides
    summary["load_average_after"] = round(os.getloadavg()[0], 1)  # other jobs on the machine slow every timing
    print(f"  {name}: test accuracy {summary['test']['accuracy']:.4f}, {summary['trainable_params']:,} trainable, "
          f"wall {wall:.0f} s, peak RSS {summary['peak_rss_mb']:.0f} MB", flush=True)
    return summary


def strategy_overrides(task: str, strategy: str) -> list[str]:
    return TASKS[task]["base"] + STRATEGIES[strategy] + [f"train.lr={TASKS[task]['lr'][strategy]}"]


def table(results: dict, task: str) -> list[str]:
    rows = [f"**{TASKS[task]['title']}**", "",
            "| strategy | test accuracy | trainable params | wall time | train loop | peak RSS |",
            "|---|---:|---:|---:|---:|---:|"]
    for strategy in STRATEGIES:
        s = results.get(task, {}).get(strategy)
        if s is None:
            continue
        rows.append(f"| {LABEL[strategy]} | {100 * s['test']['accuracy']:.2f} | {s['trainable_params']:,} "
                    f"({100 * s['trainable_share']:.1f}%) | {s['wall_seconds']:.0f} s | {s['train_seconds']:.0f} s | "
                    f"{s['peak_rss_mb']:,.0f} MB |")
    return rows


def cache_table(results: dict) -> list[str]:
    c = results.get("cache")
    if not c:
        return []
    on, off = c["on"], c["off"]
    speed = off["wall_seconds"] / on["wall_seconds"]
    # Training = what the cache replaces: the live run's loop (10 epochs of forward passes over train and
    # val) against the cached run's cache build (one length-sorted pass over train and val) plus its loop.
    # The rest (process start, model load, tokenizing, the one live pass over the test set) is the same in both.
    train_on = on["cache_seconds"] + on["train_seconds"]
    speed_train = off["train_seconds"] / train_on
    delta = 100 * (on["test"]["accuracy"] - off["test"]["accuracy"])
    return [f"**Feature cache: feature_extraction, 10 epochs, {TASKS[c['task']]['title']}**", "",
            "| run | test accuracy | wall time | training (cache build + loop) | cache build | train loop |",
            "|---|---:|---:|---:|---:|---:|",
            f"| with the cache | {100 * on['test']['accuracy']:.2f} | {on['wall_seconds']:.0f} s | {train_on:.0f} s | "
            f"{on['cache_seconds']:.0f} s | {on['train_seconds']:.1f} s |",
            f"| live forward passes | {100 * off['test']['accuracy']:.2f} | {off['wall_seconds']:.0f} s | "
            f"{off['train_seconds']:.0f} s | - | {off['train_seconds']:.0f} s |", "",
            f"Training with the cache is **{speed_train:.1f}x faster** (goal: 5x); the whole process, which also "
            f"loads the model, tokenizes and evaluates the test set live in both runs, is {speed:.1f}x faster. "
            f"Test accuracy differs by {delta:+.2f} points (goal: within 0.5)."]


def write_doc(results: dict, command: str) -> None:
    meta = results["meta"]
    loads = [s.get("load_average_after", 0) for t in TASKS for s in results.get(t, {}).values()]
    lines = [START, "", "Produced by:", "", "```", command, "```", "",
             f"{meta['date']}, {meta['machine']}, torch {meta['torch']}, {meta['threads']} threads per run, one run "
             f"at a time. The 1-minute load average after each run was {min(loads, default=0):.1f} to "
             f"{max(loads, default=0):.1f} on 2 cores (one 2-thread run alone gives about 2; more means other "
             f"jobs shared the machine and that run's times are inflated; `load_average_after` per run is in "
             f"benchmarks/results/strategies.json). Wall time is the whole process: start-up, model load, "
             f"data, cache, training, evaluation.", ""]
    for task in TASKS:
        if task in results:
            lines += table(results, task) + [""]
    lines += cache_table(results) + ["", END]
    text = DOC.read_text() if DOC.exists() else f"# Strategies\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + "\n".join(lines) + tail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS), help="Comma-separated: r8, fashion, digits.")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--cache-task", default="r8", help="Task of the cache on/off measurement ('' to skip).")
    ap.add_argument("--out-dir", default=str(ROOT / "runs" / "bench_strategies"))
    ap.add_argument("--no-docs", action="store_true", help="Do not rewrite docs/strategies.md.")
    ap.add_argument("--docs-only", action="store_true", help="Only rewrite the tables from the saved results.")
    ap.add_argument("--fresh", action="store_true",
                    help="Rerun everything; by default a run whose result (same settings) is saved is skipped.")
    args = ap.parse_args()
    if args.docs_only:
        write_doc(json.loads(RESULTS.read_text()), COMMAND)
        return
    import torch

    out_dir = Path(args.out_dir)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() and not args.fresh else {}
    results["meta"] = {"date": time.strftime("%Y-%m-%d"), "machine": describe_machine(),
                       "torch": torch.__version__, "threads": 2}
    for task in [t for t in args.tasks.split(",") if t]:
        print(f"{task}: {TASKS[task]['title']}", flush=True)
        for strategy in [s for s in args.strategies.split(",") if s]:
            done = results.get(task, {}).get(strategy, {})
            if done.get("overrides") == strategy_overrides(task, strategy):
                print(f"  {task}-{strategy}: saved result kept (--fresh reruns it)", flush=True)
                continue
            results.setdefault(task, {})[strategy] = run_one(f"{task}-{strategy}", strategy_overrides(task, strategy),
                                                             out_dir)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1))
    done = results.get("cache", {})
    if args.cache_task and not (done.get("task") == args.cache_task and
                                done["on"].get("overrides") == strategy_overrides(args.cache_task, "feature_extraction")):
        task = args.cache_task                 # both runs back to back, so the machine's load is alike
        on = run_one(f"{task}-cache-on", strategy_overrides(task, "feature_extraction"), out_dir)
        off = run_one(f"{task}-cache-off",
                      strategy_overrides(task, "feature_extraction") + ["strategy_options.cache_features=false"],
                      out_dir)
        results["cache"] = {"task": task, "on": on, "off": off}
        RESULTS.write_text(json.dumps(results, indent=1))
    if not args.no_docs:
        write_doc(results, COMMAND + ("" if args.tasks == ",".join(TASKS) else f" --tasks {args.tasks}"))
        print(f"written: {DOC}")


if __name__ == "__main__":
    main()
