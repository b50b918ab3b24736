"""`bench_infer(run_dir)`: every deployable variant of a run, measured the same way.

Variants: `torch_adapter` (load_run as trained: the adapter unmerged), `torch_merged` (merged_model), `torch_base`
(the same backbone with the adapter removed, the run's head kept: the cost floor the merged model should meet),
`onnx_fp32` and `onnx_int8` (the graphs `tunewright export --quantize int8` writes; exported first if missing).

Per variant: p50 / p95 latency at batch 1 (ms), throughput at batch 32 (samples/s), peak RSS (MB), size on disk
(MB: what the variant loads), accuracy on the run's test split. Each variant runs in its own child process, so its
peak RSS is its own (ru_maxrss only grows): the parent collates every batch once into an .npz (prepare_inputs),
and the ONNX children read it with numpy, without torch. The method follows tunewright.evaluate.speed: the same
examples for every variant (collated beforehand, dynamic padding), the same thread count, warm-up calls first;
percentiles are taken here because a server cares about the tail, not only the median.
"""
from __future__ import annotations

import json
import os
import resource
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


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM of /proc/self/status, the high-water mark of the memory map exec made.
    Not getrusage's ru_maxrss: Linux carries that across fork + exec, so a child started by a parent holding the
    PyTorch run reported the parent's peak (1346 MB for every row of the first table)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)          # kB
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)     # not Linux: the best there is


def prepare_inputs(run_dir, path, n_single: int = 50, n_batches: int = 4, test_subset: int | None = None) -> dict:
    """Collate the measurement's batches once, in the parent, into one .npz: `single/i/<input>`,
    `batch/k/<input>` (32 rows) and `test/k/<input>` + `test/k/labels` (the test split, or its first N rows, by
    32). Every child reads the same arrays, and the ONNX children never load torch or the run to make them."""
    from ..run import load_run
    from .onnx_export import data_bundle, input_names

    cfg, model, pre, _ = load_run(run_dir)
    bundle = data_bundle(cfg, pre)
    test, names = bundle.test, input_names(model)
    n = min(len(test), test_subset or len(test))
    arrays = {}

    def put(prefix: str, rows: list, labels: bool = False) -> None:
        batch = bundle.collate([test[i] for i in rows])
        for k in names + (("labels",) if labels else ()):
            arrays[f"{prefix}/{k}"] = batch[k].numpy()

    for i in range(n_single):
        put(f"single/{i}", [i % n])
    for k in range(n_batches):
        put(f"batch/{k}", [(k * 32 + j) % n for j in range(32)])
    for k, s in enumerate(range(0, n, 32)):
        put(f"test/{k}", list(range(s, min(s + 32, n))), labels=True)
    np.savez(path, **arrays)
    return {"names": list(names), "test_rows": n}


def _load_inputs(path) -> dict[str, list[dict]]:
    """The .npz of prepare_inputs -> {"single": [batch, ...], "batch": [...], "test": [...]} of numpy dicts."""
    out: dict[str, dict[int, dict]] = {"single": {}, "batch": {}, "test": {}}
    with np.load(path) as z:
        for key in z.files:
            kind, i, name = key.split("/")
            out[kind].setdefault(int(i), {})[name] = z[key]
    return {kind: [d[i] for i in sorted(d)] for kind, d in out.items()}


def _accuracy(call, test: list[dict]) -> float:
    hits = sum(int((np.asarray(call(b)).argmax(-1) == b["labels"]).sum()) for b in test)
    return hits / sum(len(b["labels"]) for b in test)


def measure_variant(run_dir, variant: str, inputs, export_dir=None, threads: int = 2) -> dict:
    """One variant, in this process: its row of the table. An ONNX variant imports numpy and onnxruntime only
    (not torch, not the run), so its peak RSS is the graph's own; the row says whether torch was loaded."""
    run_dir = Path(run_dir)
    data = _load_inputs(inputs)
    names = [k for k in data["single"][0]]
    test = data["test"]
    row = {"variant": variant, "threads": threads, "test_rows": sum(len(b["labels"]) for b in test)}
    if variant.startswith("torch"):
        import torch

        from ..evaluate.speed import torch_threads
        from ..run import load_run
        cfg, model, pre, meta = load_run(run_dir)
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

        def call(b):
            return model({k: torch.from_numpy(b[k]) for k in names}).float().numpy()
        with torch_threads(threads), torch.inference_mode():
            row.update(_timings(call, data["single"], data["batch"]))
            row["accuracy"] = _accuracy(call, test)
    else:
        import onnxruntime as ort

        from .onnx_runtime import FILES, session_options
        path = Path(export_dir or run_dir / "export" / "onnx") / FILES[variant.removeprefix("onnx_")]
        sess = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        size = path.stat().st_size

        def call(b):
            return sess.run(["logits"], {k: b[k] for k in names})[0]
        row.update(_timings(call, data["single"], data["batch"]))
        row["accuracy"] = _accuracy(call, test)
    row.update(size_mb=round(size / 1e6, 1), peak_rss_mb=peak_rss_mb(), torch_loaded="torch" in sys.modules)
    return row


def bench_infer(run_dir, export_dir=None, variants=VARIANTS, threads: int = 2, n_single: int = 50,
                n_batches: int = 4, test_subset: int | None = None, repeats: int = 1) -> list[dict]:
    """Every variant in a child process of its own; exports the ONNX graphs first when they are missing.
    `repeats` > 1 measures the variants in that many rounds, every other round in reverse order, and reports each
    timing's median over the rounds: a shared CPU drifts by 20-30% between minutes, which one round cannot tell
    from a difference between variants."""
    import tempfile
    run_dir = Path(run_dir)
    export_dir = Path(export_dir or run_dir / "export" / "onnx")
    if any(v.startswith("onnx") for v in variants) and not (export_dir / "model.int8.onnx").is_file():
        from .onnx_export import export_onnx
        export_onnx(run_dir, export_dir, quantize="int8", evaluate=False)
    variants = list(dict.fromkeys(variants))
    order = round_order(variants, repeats)
    rounds: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        print(f"collating the inputs once ({inputs.name}) ...", file=sys.stderr, flush=True)
        prepare_inputs(run_dir, inputs, n_single, n_batches, test_subset)
        for i, v in enumerate(order):
            print(f"[{i + 1}/{len(order)}] {v} ...", file=sys.stderr, flush=True)
            args = json.dumps({"run_dir": str(run_dir), "variant": v, "inputs": str(inputs),
                               "export_dir": str(export_dir), "threads": threads})
            proc = subprocess.run([sys.executable, "-m", "tunewright.deploy.bench", args], capture_output=True,
                                  text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if proc.returncode != 0:
                raise RuntimeError(f"bench-infer {v} failed:\n{proc.stderr[-3000:]}")
            rounds[v].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return combine_rounds(rounds)


def round_order(variants: list[str], repeats: int) -> list[str]:
    """The variants `repeats` times, every other round reversed: a drift in the machine's speed then falls on
    every variant alike instead of on whichever always runs last."""
    return [v for r in range(repeats) for v in (variants if r % 2 == 0 else variants[::-1])]


def combine_rounds(rounds: dict[str, list[dict]], reference: str = "torch_merged") -> list[dict]:
    """One row per variant: the median of each timing over the rounds, the largest peak RSS, and, where the
    reference ran, `vs_torch_b32`: the median over rounds of this variant's batch-32 throughput divided by the
    reference's in the same round (a ratio within a round cancels the drift between rounds)."""
    rows = []
    for v, rs in rounds.items():
        row = dict(rs[0])
        for k in ("p50_ms_b1", "p95_ms_b1", "throughput_b32"):
            row[k] = round(float(np.median([r[k] for r in rs])), 3)
        row.update(peak_rss_mb=max(r["peak_rss_mb"] for r in rs), rounds=len(rs),
                   throughput_b32_rounds=[r["throughput_b32"] for r in rs])
        if reference in rounds:
            ratios = [r["throughput_b32"] / ref["throughput_b32"] for r, ref in zip(rs, rounds[reference])]
            row["vs_torch_b32"] = round(float(np.median(ratios)), 3)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """The markdown table; with a `vs_torch_b32` column where torch_merged was measured (combine_rounds)."""
    ratio = all("vs_torch_b32" in r for r in rows)
    head = ("| variant | p50 ms (b=1) | p95 ms (b=1) | samples/s (b=32) |" + (" x torch merged (b=32) |" if ratio else "")
            + " peak RSS MB | size MB | test accuracy |\n|---|---:|---:|---:|" + ("---:|" if ratio else "")
            + "---:|---:|---:|")
    body = [f"| {r['variant']} | {r['p50_ms_b1']:.1f} | {r['p95_ms_b1']:.1f} | {r['throughput_b32']:.1f} | "
            + (f"{r['vs_torch_b32']:.2f}x | " if ratio else "")
            + f"{r['peak_rss_mb']:.0f} | {r['size_mb']:.1f} | {100 * r['accuracy']:.2f}% |" for r in rows]
    return "\n".join([head, *body])


if __name__ == "__main__":       # the child process of bench_infer: one variant, one JSON line on stdout
    kw = json.loads(sys.argv[1])
    print(json.dumps(measure_variant(**kw)))
