"""The tables of docs/beyond.md: multi-task, continual, meta-learning, domain adaptation.

    python benchmarks/bench_beyond.py                  # every part, then the doc
    python benchmarks/bench_beyond.py --part meta      # one part: domain, multitask, multitask-live,
                                                       # continual-text, continual-fashion, continual-effnet,
                                                       # continual-text-live, meta, meta-curve
    python benchmarks/bench_beyond.py --doc            # rewrite docs/beyond.md from the saved JSON

Each part writes benchmarks/results/beyond/<part>.json with its wall time; the doc is built from those
files only, and every table in it is printed under the command that reproduces it. Sizes are cut so
that the whole script fits a 2-core CPU; they are stated next to each table. The meta-learning part
(_beyond_meta.py), the live multi-task part (_beyond_multitask.py) and the continual parts
(_beyond_continual.py) keep their protocol in their own module.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import _beyond_continual  # noqa: E402  (continual learning, 3 seeds, live pretrained backbones)
import _beyond_meta  # noqa: E402  (the meta-learning part, its protocol and its table)
import _beyond_multitask  # noqa: E402  (multi-task on live MiniLM + LoRA, 3 seeds)
OUT = ROOT / "benchmarks" / "results" / "beyond"
CACHE = ROOT / "runs" / "feature_cache"
PARTS = ("domain", "multitask", "multitask-live", "continual-text", "continual-fashion", "continual-effnet",
         "continual-text-live", "meta", "meta-curve")


def cfg_of(d: dict):
    from tunewright.config.load import config_from_dict
    base = {"train": {"num_threads": 1, "log_every_steps": 10**6, "seed": 0}}
    for k, v in d.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return config_from_dict(base)


# --- parts ---------------------------------------------------------------------------------------

DOMAIN = {"train": {"epochs": 6, "batch_size": 64, "lr": 2e-3}, "model": {"name": "tunewright.zoo:small_cnn"}}
# Every weight tried is reported: picking the best row uses target labels, which real UDA cannot.
DOMAIN_WEIGHTS = {"source_only": [0.0], "dann": [0.1, 0.3, 1.0], "coral": [10.0, 100.0], "mmd": [0.1, 0.3, 1.0]}


def part_domain() -> dict:
    """Every method and weight on seeds 0, 1, 2 (the seed also draws which half of MNIST is unlabeled)."""
    from tunewright.domain.driver import adapt_domain
    rows = []
    for seed in _beyond_continual.SEEDS:
        for method, weights in DOMAIN_WEIGHTS.items():
            for w in weights:
                cfg = cfg_of({**DOMAIN, "train": {**DOMAIN["train"], "seed": seed},
                              "domain": {"method": method, "weight": w}})
                rows.append({**adapt_domain(cfg), "weight": w, "seed": seed})
                print(rows[-1], flush=True)
    return {"rows": rows, "seeds": list(_beyond_continual.SEEDS), "settings": {**DOMAIN, "weights": DOMAIN_WEIGHTS}}


MULTITASK = {"train": {"epochs": 10, "batch_size": 32, "lr": 1e-3, "seed": 42},
             "multitask": {"train_subset": 600, "test_subset": 400, "task_train_sizes": [600, 300, 150]}}
MT_VARIANTS = [("proportional", "fixed", False), ("temperature", "fixed", False), ("round_robin", "fixed", False),
               ("temperature", "uncertainty", False), ("temperature", "fixed", True)]


def part_multitask() -> dict:
    """Every variant and the single-task runs on seeds 0, 1, 2; the data (and their cached features) are drawn
    once, with seed 42."""
    import dataclasses
    from tunewright.multitask.driver import load_task_data, train_multitask
    base = cfg_of(MULTITASK)
    data = load_task_data(base, CACHE)
    runs = []
    for seed in _beyond_continual.SEEDS:
        cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, seed=seed))
        alone = {name: train_multitask(cfg, data, tasks=[t]) for t, (name, *_rest) in enumerate(data)}
        single = {name: r[name] for name, r in alone.items()}
        rows = []
        for sampling, weighting, adapters in MT_VARIANTS:
            r = train_multitask(cfg, data, sampling=sampling, weighting=weighting, task_adapters=adapters)
            rows.append({"sampling": sampling, "weighting": weighting, "task_adapters": adapters, **r})
            print({"seed": seed, **rows[-1]}, flush=True)
        runs.append({"seed": seed, "single": single, "single_seconds": {n: r["seconds"] for n, r in alone.items()},
                     "rows": rows})
    sizes = {name: [len(tr), len(te), k] for name, tr, te, k in data}
    return {"runs": runs, "seeds": list(_beyond_continual.SEEDS), "sizes": sizes, "settings": MULTITASK}


def part_continual_text() -> dict:
    return _beyond_continual.run_continual(cfg_of, CACHE, _beyond_continual.CL_TEXT)


def part_continual_fashion() -> dict:
    return _beyond_continual.run_continual(cfg_of, CACHE, _beyond_continual.CL_FASHION)


def part_continual_effnet() -> dict:
    return _beyond_continual.run_continual(cfg_of, CACHE, _beyond_continual.CL_EFFNET,
                                           methods=_beyond_continual.LIVE_METHODS)


def part_continual_text_live() -> dict:
    return _beyond_continual.run_continual(cfg_of, CACHE, _beyond_continual.CL_TEXT_LIVE,
                                           methods=_beyond_continual.LIVE_METHODS)


def part_multitask_live() -> dict:
    return _beyond_multitask.part_multitask_live(cfg_of, CACHE)


def part_meta() -> dict:
    return _beyond_meta.part_meta(cfg_of, CACHE)


def part_meta_curve() -> dict:
    return _beyond_meta.part_meta_curve(cfg_of, CACHE)


# --- the doc -------------------------------------------------------------------------------------

def _load(part):
    p = OUT / f"{part}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _cmd(part):
    return f"```\nHF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_beyond.py --part {part}\n```\n"


def table_multitask(r) -> str:
    """Mean ± sd over seeds; in brackets multi-task minus single-task, paired on each seed."""
    ms = _beyond_continual._ms
    runs = r["runs"]
    names = list(runs[0]["single"])
    head = "| sampling | loss weighting | per-task adapters | " + " | ".join(names) + " | mean | seconds per seed |\n"
    head += "|---|---|---|" + "---:|" * (len(names) + 2) + "\n"
    single_s = statistics.mean(sum(x["single_seconds"].values()) for x in runs)
    lines = [f"| single-task (each alone) | - | - | " + " | ".join(ms([x["single"][n] for x in runs]) for n in names)
             + f" | {ms([sum(x['single'].values()) / len(names) for x in runs])} | {single_s:.1f} |"]
    for i, row in enumerate(runs[0]["rows"]):
        per_seed = [x["rows"][i] for x in runs]
        cells = [f"{ms([y[n] for y in per_seed])} ({ms([y[n] - x['single'][n] for y, x in zip(per_seed, runs)], '+')})"
                 for n in names]
        mean = ms([sum(y[n] for n in names) / len(names) for y in per_seed])
        lines.append(f"| {row['sampling']} | {row['weighting']} | {'yes' if row['task_adapters'] else 'no'} | "
                     + " | ".join(cells) + f" | {mean} | {statistics.mean(y['seconds'] for y in per_seed):.1f} |")
    return head + "\n".join(lines) + f"\n\nMean ± sd over seeds {r['seeds']} (the data drawn once).\n"


def table_domain(r) -> str:
    """Mean ± sd over seeds per (method, weight); the gain over source-only training is paired by seed."""
    ms = _beyond_continual._ms
    groups = _beyond_continual.by_seed(r["rows"], lambda x: (x["method"], x.get("weight")))
    head = ("| method | alignment weight | target accuracy (MNIST, held-out half) | gain over source-only "
            "| source accuracy (digits, train) | domain shift MMD², untrained network | domain shift MMD², after "
            "training | training seconds |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for (method, w), seeds in groups.items():
        runs = list(seeds.values())
        gain = _beyond_continual.paired_cell(seeds, groups.get(("source_only", 0.0), {}), "target_acc",
                                             method == "source_only")
        lines.append(f"| {method} | {w} | {ms([x['target_acc'] for x in runs])} | {gain} | "
                     f"{ms([x['source_acc'] for x in runs])} | {ms([x['shift_init'] for x in runs], digits=4)} | "
                     f"{ms([x['shift_after'] for x in runs], digits=4)} | {statistics.mean(x['seconds'] for x in runs):.1f} |")
    seeds = r.get("seeds", [0])
    return head + "\n".join(lines) + (f"\n\nMean ± sd over seeds {seeds}.\n" if len(seeds) > 1 else "\n")


def write_doc() -> None:
    path = ROOT / "docs" / "beyond.md"
    text = path.read_text() if path.exists() else ""
    marker, end = "<!-- tables from benchmarks/bench_beyond.py -->", "<!-- end of tables -->"
    intro = text.split(marker)[0] if marker in text else text
    outro = end + text.split(end, 1)[1] if end in text else end + "\n"   # hand-written notes after the tables
    parts = [marker + "\n"]
    spec = [("multitask", "Multi-task: Reuters-R8, 20 Newsgroups, drug reviews on MiniLM", table_multitask),
            ("multitask-live", "Multi-task on a fine-tuned backbone: MiniLM + one shared LoRA, a head per task, "
             "3 seeds", _beyond_multitask.table_multitask_live),
            ("continual-effnet", "Continual on a pretrained backbone: EfficientNet-Lite0 fine-tuned on split "
             "Fashion-MNIST, 3 seeds", _beyond_continual.table_continual),
            ("continual-text-live", "Continual on a pretrained backbone: MiniLM + LoRA on R8 → 20 Newsgroups → drug "
             "reviews, 3 seeds", _beyond_continual.table_continual),
            ("continual-fashion", "Continual: split Fashion-MNIST, 5 tasks of 2 classes, small CNN",
             _beyond_continual.table_continual),
            ("continual-text", "Continual: text sequence R8 → 20 Newsgroups → drug reviews on frozen MiniLM features",
             _beyond_continual.table_continual),
            ("meta", "Meta-learning: Reuters-R52 topics, frozen MiniLM + trainable trunk, 600 test episodes",
             _beyond_meta.table_meta),
            ("domain", "Domain adaptation: sklearn digits → MNIST, small CNN", table_domain)]
    for part, title, fn in spec:
        r = _load(part)
        parts.append(f"\n### Table: {title}\n\n" + _cmd(part) + "\n")
        parts.append(fn(r) if r else "_not run yet_\n")
        if r and part == "meta":
            curve = _load("meta-curve")
            if curve:
                parts.append("\nHeld-out accuracy as meta-training goes on (200 episodes each; 0 = the trunk as "
                             "initialised; `--part meta-curve`, " + f"{curve['wall_seconds']:.0f} s):\n\n"
                             + _beyond_meta.table_meta_curve(curve))
            c = r["classes"]
            parts.append(f"\n{r['examples']} documents (at most {r['settings']['meta']['per_class']} per topic; "
                         f"features {r['feature_seconds']} s, trunk pre-training {r['pretrain_seconds']} s). "
                         f"Meta-train topics ({len(c['train'])}): {', '.join(c['train'])}. Meta-validation "
                         f"({len(c['val'])}): {', '.join(c['val'])}. Meta-test ({len(c['test'])}): "
                         f"{', '.join(c['test'])}. In no pool (fewer than 15 documents): "
                         f"{', '.join(f'{k} ({v})' for k, v in c['excluded'].items())}.\n")
        if r and "sizes" in r:
            parts.append(f"\nSizes (train, test{', classes' if part == 'multitask' else ''}): `{json.dumps(r['sizes'])}`.\n")
    path.write_text(intro.rstrip() + "\n\n" + "".join(parts) + "\n" + outro)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", action="append", choices=PARTS)
    ap.add_argument("--doc", action="store_true", help="only rewrite docs/beyond.md from the saved JSON")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.doc:
        for part in args.part or PARTS:
            t0 = time.time()
            result = globals()[f"part_{part.replace('-', '_')}"]()
            result["wall_seconds"] = round(time.time() - t0, 1)
            (OUT / f"{part}.json").write_text(json.dumps(result, indent=2))
            print(f"== {part}: {result['wall_seconds']} s", flush=True)
    write_doc()


if __name__ == "__main__":
    main()
