"""`bench_infer(run_dir)`: every deployable variant of a run, measured the same way.

Variants: `torch_adapter` (load_run as trained: the adapter unmerged), `torch_merged` (merged_model), `torch_base`
(the same backbone with the adapter removed, the run's head kept: the cost floor the merged model should meet),
`onnx_fp32` and `onnx_int8` (the graphs `tunewright export --quantize int8` writes; exported first if missing).

Per variant: p50 / p95 latency at batch 1 (ms), throughput at batch 32 (samples/s), peak RSS (MB), size on disk
(MB: what the variant loads), accuracy on the run's test split. Each variant runs in its own child process, so its
peak RSS is its own (ru_maxrss only grows). The method follows tunewright.evaluate.speed: the same examples for
every variant (collated beforehand, dynamic padding), the same thread count, warm-up calls first, inference mode;
percentiles are taken here because a server cares about the tail, not only the median.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = ("torch_adapter", "torch_merged", "torch_base", "onnx_fp32", "onnx_int8")


def _timings(call, singles: list, batches: list, warmup: int = 5) -> dict:
    for i in range(warmup):
        call(singles[i % len(singles)])
        call(batches[i % len(batches)])
    lat = []
    for b in singles:
        t0 = time.perf_counter()
        call(b)
        lat.append(1000 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    for b in batches:
        call(b)
    rows = sum(len(next(iter(b.values()))) for b in batches)
    return {"p50_ms_b1": round(float(np.percentile(lat, 50)), 3), "p95_ms_b1": round(float(np.percentile(lat, 95)), 3),
            "throughput_b32": round(rows / (time.perf_counter() - t0), 2)}


def _dir_bytes(*paths) -> int:
    total = 0
    for p in map(Path, paths):
        total += p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def measure_variant(run_dir, variant: str, export_dir=None, threads: int = 2, n_single: int = 50,
                    n_batches: int = 4, test_subset: int | None = None) -> dict:
    """One variant, in this process. Returns its row of the table."""
    import torch

    from ..evaluate import evaluate_dataset
    from ..evaluate.speed import torch_threads
    from ..run import load_run, peak_rss_mb
    from ..training.precision import resolve_precision
    from .onnx_export import data_bundle, evaluate_graph, session

    run_dir = Path(run_dir)
    cfg, model, pre, meta = load_run(run_dir)
    bundle = data_bundle(cfg, pre)
    test = bundle.test
    idx = list(range(len(test)))[: test_subset or None]
    n = len(idx)
    singles = [bundle.collate([test[idx[i % n]]]) for i in range(n_single)]
    batches = [bundle.collate([test[idx[(k * 32 + j) % n]] for j in range(32)]) for k in range(n_batches)]
    sub = torch.utils.data.Subset(test, idx)
    names = ("input_ids", "attention_mask") if model.modality == "text" else ("pixel_values",)
    row = {"variant": variant, "threads": threads, "test_rows": n}
    with torch_threads(threads), torch.inference_mode():
        if variant.startswith("torch"):
            model_dir = run_dir / "model"
            size = _dir_bytes(*(p for p in (model_dir / "model.safetensors", model_dir / "adapter",
                                            model_dir / "head.safetensors") if p.exists()))
            if variant != "torch_adapter":
                if variant == "torch_merged":
                    from ..peft import merged_model
                    merged_model(model)
                else:
                    model.backbone = model.backbone.unload()          # peft: drop the LoRA layers, keep the base
                size = sum(p.numel() * p.element_size() for p in model.state_dict().values())  # as merge saves it
            elif meta.get("weights") == "adapter":
                src = meta["source"].get("name_or_path")
                if src and (Path(src) / "model.safetensors").is_file():
                    size += (Path(src) / "model.safetensors").stat().st_size   # the base it needs
            model.eval()
            row.update(_timings(lambda b: model({k: b[k] for k in names}), singles, batches))
            precision = resolve_precision("fp32", torch.device("cpu"), False)
            row["accuracy"] = evaluate_dataset(model, sub, bundle.collate, cfg.task, bundle.num_labels, 32,
                                               precision)["accuracy"]
        else:
            from .onnx_export import FP32, INT8
            path = Path(export_dir or run_dir / "export" / "onnx") / (FP32 if variant == "onnx_fp32" else INT8)
            sess = session(path, threads)
            size = path.stat().st_size
            row.update(_timings(lambda b: sess.run(["logits"], {k: b[k].numpy() for k in names}), singles, batches))
            row["accuracy"] = evaluate_graph(sess, names, sub, bundle.collate, label=variant)["accuracy"]
    row.update(size_mb=round(size / 1e6, 1), peak_rss_mb=round(peak_rss_mb(), 1))
    return row


def bench_infer(run_dir, export_dir=None, variants=VARIANTS, threads: int = 2, n_single: int = 50,
                n_batches: int = 4, test_subset: int | None = None) -> list[dict]:
    """Every variant in a child process of its own; exports the ONNX graphs first when they are missing."""
    run_dir = Path(run_dir)
    export_dir = Path(export_dir or run_dir / "export" / "onnx")
    if any(v.startswith("onnx") for v in variants) and not (export_dir / "model.int8.onnx").is_file():
        from .onnx_export import export_onnx
        export_onnx(run_dir, export_dir, quantize="int8", evaluate=False)
    rows = []
    for i, v in enumerate(variants):
        print(f"[{i + 1}/{len(variants)}] {v} ...", file=sys.stderr, flush=True)
        args = json.dumps({"run_dir": str(run_dir), "variant": v, "export_dir": str(export_dir), "threads": threads,
                           "n_single": n_single, "n_batches": n_batches, "test_subset": test_subset})
        proc = subprocess.run([sys.executable, "-m", "tunewright.deploy.bench", args], capture_output=True, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0:
            raise RuntimeError(f"bench-infer {v} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def table(rows: list[dict]) -> str:
    head = ("| variant | p50 ms (b=1) | p95 ms (b=1) | samples/s (b=32) | peak RSS MB | size MB | test accuracy |\n"
            "|---|---:|---:|---:|---:|---:|---:|")
    body = [f"| {r['variant']} | {r['p50_ms_b1']:.1f} | {r['p95_ms_b1']:.1f} | {r['throughput_b32']:.1f} | "
            f"{r['peak_rss_mb']:.0f} | {r['size_mb']:.1f} | {100 * r['accuracy']:.2f}% |" for r in rows]
    return "\n".join([head, *body])


if __name__ == "__main__":       # the child process of bench_infer: one variant, one JSON line on stdout
    kw = json.loads(sys.argv[1])
    print(json.dumps(measure_variant(**kw)))
