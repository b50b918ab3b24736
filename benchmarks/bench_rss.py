"""Where tunewright's CPU peak RSS goes, next to the HF Trainer's: the peer job of bench_peft.py
(MiniLM, LoRA r=8 on query/value, dropout 0.1, batch 32, max_length 128, fp32, 20 timed steps
after 2 warmup steps) in variants that change only how memory is batched or handed back.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_rss.py      # about 6 min on 2 idle cores

Each variant runs in its own process (peak RSS is ru_maxrss up to the last timed step, as in
bench_peft.py). Results: benchmarks/results/rss.json and the table in benchmarks/README.md.

Why this exists: with dynamic padding and length bucketing every batch has its own shape, and
glibc's heap fragments under the changing sizes (freed blocks of one shape do not fit the next),
so the process keeps more memory than any single step needs. The variants measure that directly:
`train.malloc_trim_every` (malloc_trim after optimizer steps) gives the memory back, a fixed mmap threshold makes
large tensors bypass the heap, and `data.bucket=false` makes nearly every R8 batch the same
32 x 128 shape, as the Trainer's are. None is free, which the samples/s column shows.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _peft_throughput import job_throughput  # noqa: E402

OUT = HERE / "results" / "rss.json"
README = HERE / "README.md"
START, END = "<!-- bench_rss:start -->", "<!-- bench_rss:end -->"
M_MMAP_THRESHOLD = -3                     # glibc mallopt parameter number
STEPS, WARMUP = 20, 2

# variant -> (what it changes, tunewright config overrides (None: the Trainer), malloc setting, environment).
# THP_MEM_ALLOC_ENABLE is set for each child process explicitly: "1" is what the `tunewright` command
# sets by default (tunewright/huge_pages.py), "0" is torch's own default and the Trainer's.
ON, OFF = {"THP_MEM_ALLOC_ENABLE": "1"}, {"THP_MEM_ALLOC_ENABLE": "0"}
VARIANTS = {
    "tunewright": ("defaults: dynamic padding + length bucketing, `malloc_trim(0)` after every step (a CPU's "
                   "default, `train.malloc_trim_every: null`), torch's CPU allocator on huge pages "
                   "(`import tunewright` sets `THP_MEM_ALLOC_ENABLE=1`)", {}, None, ON),
    "tunewright, no huge pages": ("`THP_MEM_ALLOC_ENABLE=0` (the default until 2026-11-26)", {}, None, OFF),
    "tunewright, no trimming": ("`train.malloc_trim_every=0`", {"train.malloc_trim_every": 0}, None, ON),
    "tunewright, no trimming, no huge pages": ("both off, as before 2026-11-26",
                                               {"train.malloc_trim_every": 0}, None, OFF),
    "tunewright, no trimming, no bucketing": ("also `data.bucket=false`: random batches padded to their longest row",
                                              {"train.malloc_trim_every": 0, "data.bucket": False}, None, ON),
    "tunewright, malloc_trim_every=10": ("`train.malloc_trim_every=10`", {"train.malloc_trim_every": 10}, None, ON),
    "tunewright, pad to 32, malloc_trim_every=10": ("also `data.pad_to_multiple_of=32`: fewer batch shapes",
                                                    {"data.pad_to_multiple_of": 32, "train.malloc_trim_every": 10},
                                                    None, ON),
    "tunewright, pad to 8": ("`data.pad_to_multiple_of=8`, trimming every step", {"data.pad_to_multiple_of": 8},
                             None, ON),
    "tunewright, no trimming + mmap >= 4 MB": ("`mallopt(M_MMAP_THRESHOLD, 4 MB)`: tensors of 4 MB and more bypass "
                                               "the heap (no huge pages)", {"train.malloc_trim_every": 0}, 4 << 20, OFF),
    "tunewright, no trimming + mmap >= 1 MB": ("`mallopt(M_MMAP_THRESHOLD, 1 MB)` (no huge pages)",
                                               {"train.malloc_trim_every": 0}, 1 << 20, OFF),
    "hf_trainer": ("Trainer + peft defaults: random batches padded to their longest row", None, None, OFF),
    "hf_trainer, huge pages": ("the Trainer with `THP_MEM_ALLOC_ENABLE=1` exported", None, None, ON),
}


def _huge() -> bool:
    """Whether the child's torch allocator ran on huge pages (checks that the env setting took)."""
    from tunewright.huge_pages import active
    return active()


def run_variant(name: str) -> dict:
    _, over, malloc, _ = VARIANTS[name]
    libc = ctypes.CDLL("libc.so.6")
    if isinstance(malloc, int):
        assert libc.mallopt(M_MMAP_THRESHOLD, malloc) == 1
    # bench_peft.py's throughput job: the Trainer as it is, tunewright with the variant's overrides
    res = (job_throughput("hf_trainer", STEPS, WARMUP) if over is None else
           job_throughput("tunewright", STEPS, WARMUP, run_name="rss", **over))
    return {"samples_per_s": res["samples_per_s"], "peak_rss_mb": res["peak_rss_mb"], "huge_pages": _huge()}


def render(results: dict) -> str:
    base, peer = results["tunewright"], results["hf_trainer"]
    lines = ["## Where the CPU peak RSS goes (`bench_rss.py`)", "",
             "```", "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_rss.py", "```", "",
             f"{results['_date']}; the peer job of `bench_peft.py` (MiniLM, LoRA r=8 on query/value, batch 32, "
             f"max_length 128, fp32, {STEPS} timed steps after {WARMUP} warmup steps), each variant in its own "
             "process, 2 torch threads. Peak RSS up to the last timed step.", "",
             "| variant | what changes | huge pages (checked) | samples/s | vs tunewright | peak RSS MB | vs Trainer |",
             "|---|---|---|---:|---:|---:|---:|"]
    for name, (what, *_) in VARIANTS.items():
        r = results.get(name)
        if r is None:                                  # not run yet (--only)
            continue
        huge = {True: "yes", False: "no"}.get(r.get("huge_pages"), "not recorded")
        lines.append(f"| {name} | {what} | {huge} | {r['samples_per_s']:.1f} | "
                     f"{r['samples_per_s'] / base['samples_per_s']:.2f}x | {r['peak_rss_mb']:.0f} | "
                     f"{r['peak_rss_mb'] / peer['peak_rss_mb']:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--render", action="store_true", help="Only rewrite the README table from results/rss.json.")
    p.add_argument("--only", action="append", help="A variant to (re)run (repeatable), merged into the saved results; the "
                   "tunewright and hf_trainer rows are rerun with them, since ratios hold only within a run.")
    args = p.parse_args()
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args.variant)), flush=True)
        return 0
    if not args.render:
        names = list(VARIANTS)
        results = {"_date": time.strftime("%Y-%m-%d %H:%M")}
        if args.only:
            names = ["tunewright", *args.only, "hf_trainer"]
            unknown = [n for n in names if n not in VARIANTS]
            if unknown:
                p.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
            results = {**json.loads(OUT.read_text()), **results} if OUT.is_file() else results
        for name in dict.fromkeys(names):
            proc = subprocess.run([sys.executable, __file__, "--variant", name], capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "2", **VARIANTS[name][3]})
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"variant {name!r} failed")
            results[name] = json.loads(line[len("RESULT "):])
            print(name, results[name], flush=True)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=2))
    results = json.loads(OUT.read_text())
    text = README.read_text()
    block = f"{START}\n{render(results)}\n{END}"
    text = (text[:text.index(START)] + block + text[text.index(END) + len(END):]) if START in text else \
        text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)
    print(f"written: {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
