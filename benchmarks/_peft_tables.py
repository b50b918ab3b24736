"""bench_peft.py's output: the result files of its jobs, and the tables (and the time-to-accuracy plot)
it writes into docs/peft.md between `<!-- bench_peft:NAME:start/end -->` markers.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from _peft_job import LM_METHODS, METHODS, THREADS
from tunewright.machine import describe as describe_machine

HERE = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get("TW_BENCH_RESULTS", HERE / "results" / "peft"))
DOC = HERE.parent / "docs" / "peft.md"


def result_file(job: str, full: bool, tag: str = "") -> Path:
    """benchmarks/results/peft/<job>[-full][<tag>].json; tag "-gpu" for results from bench_peft_gpu.sh."""
    return RESULTS / f"{job.replace(':', '-')}{'-full' if full else ''}{tag}.json"


def _load(job: str, full: bool, tag: str = "") -> dict | None:
    path = result_file(job, full, tag)
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
                 f"perplexity on {rows[0]['test_lines']} held-out lines; {describe_machine()}, {THREADS} threads, measured "
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
