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
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The sibling modules below: a script run by path has HERE on sys.path already, a loader by path does not.
sys.path.insert(0, str(HERE))

from _peft_curve import job_trainer_curve, job_tw_curve  # noqa: E402
from _peft_job import LM_METHODS, METHODS, SETTINGS, THREADS, minilm_path  # noqa: E402
from _peft_latency import job_latency  # noqa: E402
from _peft_methods import job_lm, job_method  # noqa: E402
from _peft_tables import RESULTS, render, result_file  # noqa: E402
from _peft_throughput import job_throughput  # noqa: E402
from tunewright.machine import describe as describe_machine

# ---- jobs (each runs in a child process) ------------------------------------------------------

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
    return result_file(job, full, "-gpu" if os.environ.get("TW_BENCH_TAG") == "gpu" else "")


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
                   device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{describe_machine()}, {THREADS} threads")
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
