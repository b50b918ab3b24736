"""2 processes x 1 thread against 1 process x 2 threads, on the same job and the same global batch (issue #15).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_distributed.py [--steps 12] [--rounds 1]

The job: MiniLM LoRA (r=8, every linear layer) on a stratified subset of Reuters-R8, max_length 128,
fp32, global batch 32 (1 x 32, or 2 ranks x 16), no head warm start (only the steps are timed). Each
variant runs `tunewright train` in its own process group (the 2-process one through
`--nproc-per-node 2`, which gives each worker 1 thread; the other runs with train.num_threads=2).

- samples/s: the timed steps only, after `--warmup` steps: from metrics.jsonl, where the row of step k
  holds samples_seen_k / train_seconds_k, so train_seconds_k = k x 32 / samples_per_s_k and the rate over
  the window is (steps x 32) / (train_seconds_last - train_seconds_warmup). Model loading, tokenization,
  the final evaluation and saving are outside the window.
- peak RSS per process: each process's peak (summary.json, `peak_rss_mb_per_rank`, up to the end of the
  run including the final evaluation and save), as a ratio of the 2-process run's per-process peak to the
  1-process run's.
- all-reduce bytes per step: computed, not sniffed: DDP reduces the gradient of every trainable
  parameter once per optimizer step (fp32: 4 bytes each; LoRA: the adapter and the head), plus one
  float64 per micro-batch for the loss weights and one int32 for the skip decision (and a float64 on
  log steps). That is the payload; a ring all-reduce moves 2 (W-1)/W times it over each link.
Goal: 2 x 1 reaches at least 0.85x the samples/s of 1 x 2.

`--fsdp` adds a third variant per round, 2 x 1 under `distributed.strategy=fsdp` (FSDP2: the frozen base,
the adapter and the head sharded over the 2 ranks), with its own ratio against 1 x 2.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from tunewright.machine import describe as describe_machine

REPO = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = 32


def job(rows: int, steps: int) -> list[str]:
    return ["model.name=minilm", "data.train=reuters-r8", "data.val=null", "data.test=null", f"data.train_subset={rows}", "data.test_subset=64",
            "data.max_length=128", "method=lora", "lora.r=8", "strategy_options.warm_start_head=false",
            "train.precision=fp32", f"train.max_steps={steps}", "train.log_every_steps=1", "train.progress=none",
            "checkpoint.every_steps=100000", "train.epochs=1"]


def run_variant(name: str, nproc: int, rows: int, steps: int, warmup: int, out: Path, extra=()) -> dict:
    per_rank = GLOBAL_BATCH // nproc
    args = [sys.executable, "-m", "tunewright", "train", str(REPO / "configs" / "tiny.yaml"), f"output_dir={out}",
            f"run_name={name}", *job(rows, steps), f"train.batch_size={per_rank}", *extra]
    args += ["--nproc-per-node", str(nproc)] if nproc > 1 else ["train.num_threads=2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{name} failed:\n{p.stderr[-4000:]}")
    run_dir = out / name
    rows_ = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows_ if r.get("split") == "train"]
    secs = {r["step"]: r["step"] * GLOBAL_BATCH / r["samples_per_s"] for r in train}
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"variant": name, "processes": nproc, "threads_per_process": 2 // nproc,
            "samples_per_s": (steps - warmup) * GLOBAL_BATCH / (secs[steps] - secs[warmup]),
            "peak_rss_mb_per_process": summary["peak_rss_mb_per_rank"],
            "trainable_params": summary["trainable_params"], "wall_s": round(time.perf_counter() - t0, 1),
            "load_start": round(load0, 2), "load_end": round(os.getloadavg()[0], 2),
            "test_accuracy": summary["test"].get("accuracy")}


def allreduce_bytes_per_step(trainable: int, grad_accum: int = 1, log_step: bool = True) -> int:
    """Payload all-reduced per optimizer step under DDP (see the module docstring)."""
    return 4 * trainable + grad_accum * (8 + 0) + 4 + (8 if log_step else 0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rows", type=int, default=480, help="training rows (a stratified subset of R8 train)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds; the order of the two variants flips each round")
    ap.add_argument("--fsdp", action="store_true", help="add 2 x 1 under distributed.strategy=fsdp to every round")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "distributed_bench.json"))
    a = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            order = [("1x2", 1, ()), ("2x1", 2, ())] + ([("2x1-fsdp", 2, ("distributed.strategy=fsdp",))]
                                                        if a.fsdp else [])
            order = order if r % 2 == 0 else order[::-1]      # each variant runs first in some round
            pair = {name: run_variant(f"{name}_r{r}", n, a.rows, a.steps, a.warmup, Path(tmp), extra)
                    for name, n, extra in order}
            results.append(pair)
    ratios = [p["2x1"]["samples_per_s"] / p["1x2"]["samples_per_s"] for p in results]
    rss = [max(p["2x1"]["peak_rss_mb_per_process"]) / p["1x2"]["peak_rss_mb_per_process"][0] for p in results]
    trainable = results[0]["2x1"]["trainable_params"]
    ratio = sorted(ratios)[len(ratios) // 2]
    report = {"date": time.strftime("%Y-%m-%d"), "cpu": describe_machine(),
              "cores": os.cpu_count(), "torch": torch.__version__, "steps": a.steps, "warmup": a.warmup,
              "rows": a.rows, "global_batch": GLOBAL_BATCH, "rounds": results, "throughput_ratio_2x1_vs_1x2": ratio,
              "per_round_ratios": ratios, "peak_rss_ratio_per_process": rss,
              "allreduce_bytes_per_step": allreduce_bytes_per_step(trainable), "goal": 0.85,
              "met": ratio >= 0.85}
    if a.fsdp:
        f_ratios = [p["2x1-fsdp"]["samples_per_s"] / p["1x2"]["samples_per_s"] for p in results]
        report["fsdp_throughput_ratio_vs_1x2"] = sorted(f_ratios)[len(f_ratios) // 2]
        report["fsdp_per_round_ratios"] = f_ratios
        report["fsdp_peak_rss_ratio_per_process"] = [max(p["2x1-fsdp"]["peak_rss_mb_per_process"]) /
                                                     p["1x2"]["peak_rss_mb_per_process"][0] for p in results]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    print("| variant | processes x threads | samples/s | peak RSS per process (MB) | load start -> end |")
    print("|---|---|---:|---:|---|")
    for p in results:
        for name in [n for n in ("1x2", "2x1", "2x1-fsdp") if n in p]:
            v = p[name]
            print(f"| {v['variant']} | {v['processes']} x {v['threads_per_process']} | {v['samples_per_s']:.2f} | "
                  f"{', '.join(f'{x:.0f}' for x in v['peak_rss_mb_per_process'])} | {v['load_start']} -> {v['load_end']} |")
    print(f"\n2x1 / 1x2 samples/s: {ratio:.2f}x (per round {', '.join(f'{x:.2f}' for x in ratios)}; goal >= 0.85x): "
          f"{'met' if ratio >= 0.85 else 'NOT met'}")
    print(f"peak RSS per process, 2x1 / 1x2: {', '.join(f'{x:.2f}x' for x in rss)}")
    if a.fsdp:
        print(f"2x1-fsdp / 1x2 samples/s: {report['fsdp_throughput_ratio_vs_1x2']:.2f}x (per round "
              f"{', '.join(f'{x:.2f}' for x in report['fsdp_per_round_ratios'])}); peak RSS per process "
              f"{', '.join(f'{x:.2f}x' for x in report['fsdp_peak_rss_ratio_per_process'])}")
    print(f"all-reduce payload per step: {report['allreduce_bytes_per_step']:,} bytes "
          f"({trainable:,} trainable fp32 gradients + 3 scalars)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
