"""bench_beyond's multi-task part on a fine-tuned backbone: MiniLM with one shared LoRA (trained live, no
cached features) and a head per task, against each task trained alone with the same settings, 3 seeds.

The tasks: Reuters-R8 (600 training rows), 20 Newsgroups (600) and drug reviews cut to 200 rows (the
low-data task, whose rating is positive / neutral / negative); test: 400 rows each (drug reviews has
379). The data subsets are drawn once (seed 42); the seeds change the initialisation and the order.
"""
from __future__ import annotations

import statistics
import time

MT_LIVE = {"model": {"name": "minilm"}, "method": "lora", "data": {"max_length": 128},
           "train": {"epochs": 3, "batch_size": 16, "lr": 1e-3, "seed": 42, "num_threads": 2},
           "multitask": {"tasks": ["reuters-r8", "20newsgroups", "drug-reviews"], "train_subset": 600,
                         "test_subset": 400, "task_train_sizes": [600, 600, 200], "cache_features": False,
                         "sampling": "temperature", "temperature": 2.0, "weighting": "fixed"}}
SEEDS = (0, 1, 2)


def part_multitask_live(cfg_of, cache) -> dict:
    import dataclasses
    from tunewright.multitask.driver import load_task_data, train_multitask

    base = cfg_of(MT_LIVE)
    data = load_task_data(base, cache)
    names = [d[0] for d in data]
    runs = []
    for seed in SEEDS:
        cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, seed=seed))
        t0 = time.time()
        multi = train_multitask(cfg, data)
        single = {n: train_multitask(cfg, data, tasks=[t]) for t, n in enumerate(names)}
        runs.append({"seed": seed, "multi": {n: multi[n] for n in names}, "single": {n: single[n][n] for n in names},
                     "seconds_multi": multi["seconds"], "seconds_single": {n: single[n]["seconds"] for n in names},
                     "wall_seconds": round(time.time() - t0, 1)})
        print(runs[-1], flush=True)
    return {"runs": runs, "settings": MT_LIVE, "seeds": list(SEEDS),
            "sizes": {n: [len(tr), len(te), k] for n, tr, te, k in data}}


def _ms(values) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table_multitask_live(r) -> str:
    names = list(r["runs"][0]["multi"])
    head = ("| task | train rows | single-task | multi-task (shared LoRA) | gain (multi − single) | "
            "seeds where multi > single |\n|---|---:|---:|---:|---:|---:|\n")
    lines = []
    for n in names:
        single = [x["single"][n] for x in r["runs"]]
        multi = [x["multi"][n] for x in r["runs"]]
        gain = [m - s for m, s in zip(multi, single)]
        lines.append(f"| {n} | {r['sizes'][n][0]} | {_ms(single)} | {_ms(multi)} | {statistics.mean(gain):+.3f} ± "
                     f"{statistics.stdev(gain):.3f} | {sum(g > 0 for g in gain)}/{len(gain)} |")
    secs = [x["wall_seconds"] for x in r["runs"]]
    return head + "\n".join(lines) + (f"\n\nMean ± sd over seeds {r['seeds']}. Wall time per seed (the joint run "
                                      f"and the three single-task runs, with their test evaluations): "
                                      f"{', '.join(f'{s:.0f} s' for s in secs)}.\n")
