"""bench_beyond's continual-learning parts, 3 seeds each: the data are drawn once, the seeds change the
initialisation of the new layers, the order of the batches, the replay reservoir and the Fisher batches.

- continual-effnet: EfficientNet-Lite0 (ImageNet weights) fine-tuned in full on split Fashion-MNIST (5 tasks
  of 2 classes), each 28x28 image resized to 64x64 per batch; BatchNorm runs on its stored statistics
  (`strategy_options.bn_stats: frozen`, detectron2's choice for small batches and small data).
- continual-text-live: MiniLM trained live through LoRA (r = 8) on R8 -> 20 Newsgroups -> drug reviews,
  texts cut to 32 tokens (a LoRA step costs ~20 ms per text at 32 tokens, ~85 at 128).
- continual-fashion, continual-text: the small CNN on 28x28 pixels, and a trunk over frozen cached MiniLM
  features: seconds per run, the cheap reference for the two above.

Every method runs in both scenarios except per-task adapters, which need the task id (task-incremental
only). "Forgetting avoided" is BWT minus naive fine-tuning's BWT on the same seed: how much of naive
fine-tuning's forgetting the method removes (positive: less forgetting).
"""
from __future__ import annotations

import dataclasses
import statistics
import time

SEEDS = (0, 1, 2)
LIVE_METHODS = ("naive", "ewc", "replay", "lwf", "adapters")     # online_ewc: the cheap tables only

CL_EFFNET = {"model": {"name": "efficientnet-lite0"}, "data": {"image_size": 64},
             "strategy_options": {"bn_stats": "frozen"},
             "train": {"epochs": 1, "batch_size": 16, "lr": 3e-4, "seed": 0, "num_threads": 2},
             "continual": {"benchmark": "split-fashion-mnist", "train_per_task": 200, "test_per_task": 100,
                           "ewc_lambda": 1000.0, "fisher_batches": 4, "buffer_size": 100, "replay_batch": 8,
                           "adapter_dim": 16}}
CL_TEXT_LIVE = {"model": {"name": "minilm"}, "method": "lora", "data": {"max_length": 32},
                "train": {"epochs": 1, "batch_size": 8, "lr": 2e-3, "seed": 42, "num_threads": 2},
                "continual": {"benchmark": "text", "cache_features": False, "train_per_task": 300,
                              "test_per_task": 100, "ewc_lambda": 1000.0, "fisher_batches": 4, "buffer_size": 60,
                              "replay_batch": 4, "adapter_dim": 16}}
CL_TEXT = {"train": {"epochs": 5, "batch_size": 32, "lr": 1e-3, "seed": 42},
           "continual": {"benchmark": "text", "scenario": "task", "train_per_task": 600, "test_per_task": 400,
                         "ewc_lambda": 1000.0, "buffer_size": 200, "replay_batch": 16}}
CL_FASHION = {"train": {"epochs": 2, "batch_size": 32, "lr": 1e-3}, "model": {"name": "tunewright.zoo:small_cnn"},
              "continual": {"benchmark": "split-fashion-mnist", "train_per_task": 600, "test_per_task": 400,
                            "ewc_lambda": 5000.0, "buffer_size": 200, "replay_batch": 32}}


def run_continual(cfg_of, cache, settings: dict, scenarios=("class", "task"), methods=None, seeds=SEEDS) -> dict:
    """Every (scenario, method, seed) of `settings`; the data of each scenario are loaded once."""
    from tunewright.continual.driver import load_tasks, run_sequence
    from tunewright.continual.methods import METHODS     # every declared method, in declaration order

    out = {"settings": settings, "seeds": list(seeds), "rows": []}
    for scenario in scenarios:
        base = cfg_of({**settings, "continual": {**settings["continual"], "scenario": scenario}})
        t0 = time.time()
        loaded = load_tasks(base, cache)
        out.setdefault("load_seconds", {})[scenario] = round(time.time() - t0, 1)
        out["sizes"] = [[len(a), len(b)] for a, b in loaded[0]]
        for name in methods or METHODS:
            if scenario == "class" and METHODS[name].needs_task_id:
                continue                     # adapters route by task id: task-incremental only
            for seed in seeds:
                cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, seed=seed))
                r = run_sequence(cfg, name, loaded)
                out["rows"].append({**r, "seed": seed})
                print({k: r[k] for k in ("method", "scenario", "acc", "bwt", "fwt", "seconds")} | {"seed": seed},
                      flush=True)
    return out


def _ms(values, sign: str = "", digits: int = 3) -> str:
    """mean ± sd (one value: itself)."""
    if len(values) < 2:
        return f"{values[0]:{sign}.{digits}f}"
    return f"{statistics.mean(values):{sign}.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def by_seed(rows, key) -> dict:
    """{key(row): {seed: row}}, in the rows' order."""
    groups: dict = {}
    for x in rows:
        groups.setdefault(key(x), {})[x.get("seed", 0)] = x
    return groups


def paired_cell(runs: dict, reference: dict, metric: str, is_reference: bool) -> str:
    """mean ± sd of runs[s][metric] - reference[s][metric] over the seeds both have."""
    if is_reference:
        return "(reference)"
    diff = [x[metric] - reference[s][metric] for s, x in runs.items() if s in reference]
    return _ms(diff, "+") if diff else "-"


def table_continual(r) -> str:
    """Mean ± sd over seeds per (scenario, method); forgetting avoided is paired with naive on each seed."""
    groups = by_seed(r["rows"], lambda x: (x["scenario"], x["method"]))
    head = ("| scenario | method | avg accuracy (ACC) | backward transfer (BWT) | forgetting avoided (BWT − naive's) | "
            "forward transfer (FWT) | seconds per run |\n|---|---|---:|---:|---:|---:|---:|\n")
    lines = []
    for (scenario, method), seeds in groups.items():
        runs = list(seeds.values())
        avoided = paired_cell(seeds, groups.get((scenario, "naive"), {}), "bwt", method == "naive")
        lines.append(f"| {scenario} | {method} | {_ms([x['acc'] for x in runs])} | {_ms([x['bwt'] for x in runs], '+')} "
                     f"| {avoided} | {_ms([x['fwt'] for x in runs], '+')} | "
                     f"{statistics.mean(x['seconds'] for x in runs):.1f} |")
    n = len(r.get("seeds", [0]))
    note = (f"\nMean ± sd over seeds {r['seeds']} (the data drawn once)." if n > 1 else "\nOne seed.")
    return head + "\n".join(lines) + "\n" + note + "\n"
