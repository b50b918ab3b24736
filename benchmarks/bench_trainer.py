"""Peer benchmark (issue #2): tunewright against a hand-written PyTorch loop and the HF Trainer.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_trainer.py            # full: 2 rounds, ~8-10 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_trainer.py --quick    # 3 timed steps, 1 round, README untouched

The same job, two measurements, each a pair of variants (METHOD_NOTES in _trainer_report.py says it
in full; it is also what benchmarks/README.md prints under the table):

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
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
# The sibling modules below: a script run by path has HERE on sys.path already, a loader by path
# (tests/benchmarks/test_bench_smoke.py) does not.
sys.path.insert(0, str(HERE))

from _measure import wait_until_quiet  # noqa: E402
from _trainer_job import HUGE_PAGES_ENV, MEASUREMENTS, VARIANTS, BenchConfig  # noqa: E402
from _trainer_report import markdown, write_readme  # noqa: E402
from _trainer_variants import run_variant  # noqa: E402


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
    from tunewright.machine import describe
    return {"date": _dt.date.today().isoformat(), "cpu": describe(), "cpu_cores": os.cpu_count(),
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
