"""`tunewright compare`: the same data, seed and budget for every variant, and one leaderboard.

A variant is a strategy name (`full`, `feature_extraction`, ...), a PEFT method name (`lora`,
`bitfit`, ...) or a mapping of dotted overrides with a `name`. Each variant trains in its own
process: peak RSS is a per-process number (`ru_maxrss` never goes down), so variants run one
after another in one process would each report the largest so far. The leaderboard then adds what
training does not measure: inference latency at batch 1, throughput at batch 32, and the size of
what the run saves (the whole model, or only the adapter and head).

    compare_dir/<variant>/         an ordinary run folder (summary.json, metrics.jsonl, model/)
    compare_dir/leaderboard.csv    one row per variant (columns: LEADERBOARD_COLUMNS)
    compare_dir/report.html        tunewright report on the whole comparison
    compare_dir/mlflow.db          with `tracking: [mlflow]`: the comparison's MLflow store (a parent
                                   run, one child run per variant), beside the variants' run folders
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from . import progress
from .config import dump_yaml, to_dict
from .config.load import config_from_dict
from .errors import ConfigError, TunewrightError
from .path_names import check_name

SUMMARY_KEYS = ("trainable_params", "trainable_share", "train_seconds", "peak_rss_mb")
MEASURED_KEYS = ("latency_ms_b1", "throughput_b32", "size_mb")


@dataclass
class Variant:
    name: str
    overrides: dict          # dotted key -> value, applied on top of the base config


def variant_of(entry) -> Variant:
    """`"lora"` -> method lora; `"feature_extraction"` -> that strategy; a mapping -> its overrides."""
    from .peft import METHODS
    from .strategies import STRATEGIES
    peft_methods = [m for m, spec in METHODS.items() if spec.freezes_base]     # not `none`

    if isinstance(entry, dict):
        entry = dict(entry)
        name = entry.pop("name", None) or entry.get("method") or entry.get("strategy")
        if not name:
            raise ConfigError(f"compare: the variant {entry!r} needs a name (or a method / strategy).")
        if "method" not in entry and "strategy" not in entry and name in {**METHODS, **STRATEGIES}:
            entry.update(variant_of(name).overrides)
        return Variant(str(name), entry)
    name = str(entry).strip()
    if name in STRATEGIES:
        return Variant(name, {"strategy": name, "method": "none"})
    if name in peft_methods:
        return Variant(name, {"strategy": "full", "method": name})
    raise ConfigError(f"compare: {name!r} is neither a strategy ({', '.join(STRATEGIES)}) nor a method "
                      f"({', '.join(peft_methods)}).")


def variants_for(cfg, methods: list[str] | None) -> list[Variant]:
    entries = methods if methods else cfg.compare
    if not entries:
        raise ConfigError("compare: no variants; pass --methods full,lora,... or add a `compare:` list to the config.")
    out = [variant_of(e) for e in entries]
    names = [check_name(v.name, "compare: variant name") for v in out]   # each becomes <compare_dir>/<name>/
    if len(set(names)) != len(names):
        raise ConfigError(f"compare: variant names repeat: {names}.")
    return out


def _set_dotted(tree: dict, key: str, value) -> None:
    *path, last = key.split(".")
    for p in path:
        tree = tree.setdefault(p, {})
    tree[last] = value


def variant_config(base: dict, v: Variant, compare_dir: Path):
    d = json.loads(json.dumps(base))  # deep copy
    for k, val in v.overrides.items():
        _set_dotted(d, k, val)
    d.update(run_name=v.name, output_dir=str(compare_dir), compare=[], search_space={})
    return config_from_dict(d)


def weights_mb(model_dir: Path) -> float:
    """Bytes of the saved weights (`*.safetensors`: the full model, or the adapter and head) in MB."""
    return round(sum(f.stat().st_size for f in Path(model_dir).rglob("*.safetensors")) / 1e6, 3)


def inference_speed(run_dir: Path, threads: int | None = None, **kw) -> dict:
    """ms per sample at batch 1 and samples/s at batch 32 on the run's test examples (val when there is
    no test split), measured by `evaluate.speed.measure_speed`: eval mode, inference_mode, warm-up,
    medians of repeats, `threads` CPU threads. Returns the two numbers plus how they were measured."""
    from .data import build_data, read_data
    from .evaluate.speed import measure_speed
    from .run import load_run
    from .data.collate import to_device

    cfg, model, preprocessor, _ = load_run(run_dir)
    bundle = build_data(read_data(cfg), preprocessor, cfg)
    ds = bundle.test if bundle.test is not None else bundle.val
    device = next(model.parameters()).device

    def make_batch(idx):
        return to_device(bundle.collate([ds[i] for i in idx]), device)

    return measure_speed(model, make_batch, len(ds), threads=threads, **kw)


def leaderboard_row(run_dir: Path, name: str, threads: int | None = None) -> dict:
    """One leaderboard row from a finished variant's summary.json plus inference measurements
    (all variants of one comparison are timed with the same `threads`)."""
    s = json.loads((run_dir / "summary.json").read_text())
    row = {"variant": name}
    for split in ("val", "test"):
        for k, v in (s.get(split) or {}).items():
            if isinstance(v, (int, float)):
                row[f"{split}_{k}"] = v
    row.update({k: s[k] for k in SUMMARY_KEYS})
    speed = inference_speed(run_dir, threads)
    row.update({k: speed[k] for k in MEASURED_KEYS if k in speed})
    row["size_mb"] = weights_mb(run_dir / "model")
    return row


def write_leaderboard(rows: list[dict], path: Path) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def leaderboard_markdown(rows: list[dict], metric: str = "accuracy") -> str:
    """The leaderboard as a Markdown table (best test metric first), for docs and READMEs."""
    cols = ["variant", f"val_{metric}", f"test_{metric}", "test_macro_f1", "trainable_params", "trainable_share",
            "train_seconds", "peak_rss_mb", "latency_ms_b1", "throughput_b32", "size_mb"]
    cols = [c for c in cols if any(c in r for r in rows)]

    def fmt(k, v):
        if v is None or isinstance(v, str):
            return v or ""
        if k == "trainable_params":
            return f"{int(v):,}"
        return f"{v:.2%}" if k == "trainable_share" else f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in sorted(rows, key=lambda r: -(r.get(f"test_{metric}") or 0)):
        lines.append("| " + " | ".join(fmt(c, r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def leaderboard_cells(rows: list[dict], metric: str = "accuracy") -> tuple[list[str], list[list[str]]]:
    """(headers, rows of text) of the terminal leaderboard, best test metric first; `tunewright compare`
    prints them (cli/show.py), so that nothing is cut at any width."""
    cols = [("variant", "variant"), (f"val_{metric}", f"val {metric}"), (f"test_{metric}", f"test {metric}"),
            ("test_macro_f1", "test macro-F1"), ("trainable_params", "trainable"), ("trainable_share", "share"),
            ("train_seconds", "train s"), ("peak_rss_mb", "peak RSS MB"), ("latency_ms_b1", "ms/sample b1"),
            ("throughput_b32", "samples/s b32"), ("size_mb", "saved MB")]
    cols = [c for c in cols if any(c[0] in r for r in rows)]
    cells = []
    for r in sorted(rows, key=lambda r: -(r.get(f"test_{metric}") or 0)):
        line = []
        for key, _ in cols:
            v = r.get(key)
            line.append(v if isinstance(v, str) else "" if v is None else f"{int(v):,}" if key == "trainable_params"
                        else f"{v:.2%}" if key == "trainable_share" else f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}")
        cells.append(line)
    return [title for _, title in cols], cells


def run_compare(config, overrides: list[str] | None = None, methods: list[str] | None = None,
                out_dir: str | None = None, report: bool = True, resume: bool = False) -> Path:
    """Train every variant (one process each), then write leaderboard.csv and report.html.
    `resume`: keep variants that already have a summary.json (an interrupted comparison goes on)."""
    from .run import as_config

    cfg = as_config(config, overrides)
    variants = variants_for(cfg, methods)
    compare_dir = Path(out_dir or Path(cfg.output_dir) / f"{cfg.run_name}-compare")
    compare_dir.mkdir(parents=True, exist_ok=True)
    base = to_dict(cfg)
    (compare_dir / "config.yaml").write_text(dump_yaml(cfg))
    # One thread count for every variant's latency (the config's, else this process's default), so the
    # speed columns compare methods, not settings; recorded in compare.json with the protocol.
    threads = cfg.train.num_threads or torch.get_num_threads()
    (compare_dir / "compare.json").write_text(json.dumps({
        "variants": [v.__dict__ for v in variants],
        "speed": {"threads": threads, "batch_1": "median of 5 passes over 20 test examples",
                  "batch_32": "median of 5 passes over 3 batches", "warmup_calls": 3, "mode": "eval, inference_mode"},
    }, indent=2))
    env = dict(os.environ)
    parent = None
    if "mlflow" in cfg.tracking:
        from .tracking.mlflow import start_parent_run
        parent = start_parent_run(cfg, compare_dir)
        env["TUNEWRIGHT_MLFLOW_PARENT_RUN_ID"] = parent.run_id
    rows = []
    board = compare_dir / "leaderboard.csv"
    from .report.runs import read_leaderboard
    previous = {r["variant"]: r for r in read_leaderboard(board)} if resume and board.exists() else {}
    shown = progress.phase("compare", len(variants), "variants", outer=True)
    for v in variants:
        vcfg = variant_config(base, v, compare_dir)
        path = compare_dir / "configs" / f"{v.name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(dump_yaml(vcfg))
        done = resume and (compare_dir / v.name / "summary.json").exists()
        shown.say(f"{v.name} ({', '.join(f'{k}={x}' for k, x in v.overrides.items())})"
                  + (": kept from the interrupted comparison" if done else ""))
        proc = subprocess.run([sys.executable, "-m", "tunewright.cli.main", "train", str(path), "--overwrite"],
                              env=env) if not done else subprocess.CompletedProcess([], 0)
        if proc.returncode != 0:
            raise TunewrightError(f"compare: variant {v.name!r} failed (exit {proc.returncode}); its config is {path}.")
        rows.append(previous[v.name] if done and v.name in previous
                    else leaderboard_row(compare_dir / v.name, v.name, threads))
        write_leaderboard(rows, compare_dir / "leaderboard.csv")  # after each variant: partial results survive
        (compare_dir / "leaderboard.md").write_text(leaderboard_markdown(rows))
        shown.advance(1)
    shown.close()
    if report:
        from .report import write_report
        print(f"report: {write_report(compare_dir)}")
    if parent is not None:
        parent.finish(rows, compare_dir / "leaderboard.csv")  # after the report: it is attached too
    return compare_dir
