"""Head dropout over a warm-started head (issue #20, item 8): MiniLM LoRA in the R8 race's setting.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_warm_head.py [--out runs/bench_warm_head]

The linear probe fits the head on dropout-free (eval-mode) features; its weights come out with a large
norm. With head dropout on in training, every step multiplies that noise through the head, so the
training loss reads 5-9 while the validation loss is about 1. The setting is the `lora` variant of
configs/compare_r8.yaml (the race: a stratified 480-document R8 subset, 64 tokens, 1 epoch at batch 32,
a 300-document test subset). The variants, each in its own process, one after another in this
session (same data, seed and budget):

    dropout_on      model.head_dropout 0.1 (the old default), probe weight decay 1e-4 (the default)
    dropout_off     model.head_dropout 0
    regularised     model.head_dropout 0.1, probe weight decay 1e-2

Prints a Markdown table: test/val accuracy and loss, the mean and last logged training loss, seconds;
with the CPU model and the load average before and after each run.
The whole race (five methods) and the full R8 sets are left for a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {
    "dropout_on": ["model.head_dropout=0.1"],
    "dropout_off": ["model.head_dropout=0"],
    "regularised": ["model.head_dropout=0.1", "strategy_options.probe_weight_decay=0.01"],
}
CONFIG = "configs/compare_r8.yaml"    # the race; its `lora` variant is strategy full + method lora
BASE = ["strategy=full", "method=lora", "train.progress=plain", "train.log_every_steps=1"]


def cpu_model() -> str:
    from tunewright.machine import describe
    return describe()


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_variant(name: str, out: Path) -> dict:
    overrides = [*BASE, *VARIANTS[name], f"output_dir={out}", f"run_name={name}"]
    cmd = [sys.executable, "-m", "tunewright.cli.main", "train", CONFIG, *overrides, "--overwrite"]
    before, t0 = load(), time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    seconds, after = time.time() - t0, load()
    run = out / name
    s = json.loads((run / "summary.json").read_text())
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in rows if r["split"] == "train"]
    return {"variant": name, "overrides": VARIANTS[name], "test_accuracy": s["test"]["accuracy"],
            "test_loss": s["test"]["loss"], "val_accuracy": s["val"]["accuracy"], "val_loss": s["val"]["loss"],
            "train_loss_mean": sum(train) / len(train), "train_loss_last": train[-1], "seconds": round(seconds, 1),
            "load_before": before, "load_after": after,
            "probe_note": next((n for n in s["notes"] if n.startswith("head warm start")), "")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/bench_warm_head")
    ap.add_argument("--only", help="comma-separated variants (default: all)")
    args = ap.parse_args()
    out = Path(args.out)
    names = args.only.split(",") if args.only else list(VARIANTS)
    results = []
    for name in names:
        results.append(run_variant(name, out))
        print(json.dumps(results[-1]), flush=True)
    (out / "results.json").write_text(json.dumps({"cpu": cpu_model(), "cores": os.cpu_count(), "results": results},
                                                 indent=2))
    print(f"\n{cpu_model()}, {os.cpu_count()} cores; {CONFIG} {' '.join(BASE)}\n")
    print("| variant | test acc | test loss | val acc | val loss | train loss mean | train loss last | s | load before -> after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['variant']} | {r['test_accuracy']:.4f} | {r['test_loss']:.3f} | {r['val_accuracy']:.4f} | "
              f"{r['val_loss']:.3f} | {r['train_loss_mean']:.3f} | {r['train_loss_last']:.3f} | {r['seconds']} | "
              f"{r['load_before']} -> {r['load_after']} |")


if __name__ == "__main__":
    main()
