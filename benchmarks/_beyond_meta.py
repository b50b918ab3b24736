"""bench_beyond's meta-learning part: 5-way 1- and 5-shot on Reuters-R52 topics, frozen MiniLM features.

Protocol (what makes the comparison fair):
- 35 topics have at least 15 documents (an episode's 5 shots + 10 queries); the other 17 are in no pool.
  10 topics are meta-test (configs/meta_reuters_r52.yaml: a seeded draw); of the other 25, 5 are a
  meta-validation pool (a seeded draw) and 20 meta-train.
- Every method's settings are chosen on 200 meta-validation episodes, from the grid below, and only the
  chosen setting is scored on the 600 meta-test episodes; the test episodes are the same for every method.
- Baselines, nothing meta-learned: a linear probe on the pretrained features, and fine-tuning every
  weight of a trunk pre-trained as an ordinary 20-class classifier on the meta-train topics (the
  "baseline" of Chen et al. 2019), each from a zero head with plain SGD on the K shots.
"""
from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np

META_TEXT = {"model": {"name": "minilm"}, "data": {"max_length": 128},
             "train": {"lr": 1e-3, "seed": 0, "num_threads": 2},
             "meta": {"dataset": "reuters-r52", "test_classes": ["acq", "alum", "bop", "copper", "cpi", "earn", "housing",
                                                                 "iron-steel", "nat-gas", "ship"],
                      "n_way": 5, "q_queries": 10, "min_per_class": 15, "per_class": 100, "trunk_dim": 256,
                      "meta_batch": 8, "meta_iterations": 300, "test_episodes": 600}}
VAL_TOPICS, VAL_EPISODES = 5, 200
# Chosen on meta-validation. The trunk (meta.trunk: mlp, residual, scale); MAML-family also the inner LR,
# inner steps (test time: twice as many) and whether the head starts each episode at zero.
TRUNKS = ("mlp", "residual", "scale")
INNER = [{"trunk": t, "inner_lr": a, "inner_steps": s, "zero_head": z}
         for t, a, s, z in itertools.product(TRUNKS, (0.5, 1.0), (1, 5), (False, True))]
GRIDS = {"maml": INNER, "fomaml": INNER, "anil": INNER, "protonet": [{"trunk": t} for t in TRUNKS]}
# Why meta-learning does not beat the linear probe here: accuracy on held-out episodes of the meta-train
# topics, of the meta-validation and of the meta-test topics as meta-training goes on (0: the trunk as
# initialised, i.e. the pretrained features themselves for the residual trunk).
CURVE_ITERATIONS = (0, 30, 100, 300, 1000)
CURVE = [("anil", {"trunk": "residual", "inner_lr": 0.5, "inner_steps": 5, "zero_head": True}),
         ("protonet", {"trunk": "residual"}),
         ("maml", {"trunk": "scale", "inner_lr": 0.5, "inner_steps": 1, "zero_head": True})]
BASELINE_GRID = [{"lr": lr, "steps": s} for lr, s in itertools.product((0.01, 0.1, 1.0), (20, 100))]


def _scores(accs: list, probe: list) -> dict:
    """Mean and 95% CI over the test episodes, and the paired difference to the linear probe on the same
    episodes (mean and 95% CI of the per-episode differences: far tighter than two separate CIs)."""
    from tunewright.meta.core import mean_ci
    acc, ci = mean_ci(accs)
    diff, dci = mean_ci([a - b for a, b in zip(accs, probe)])
    return {"test_acc": acc, "ci95": ci, "vs_probe": diff, "vs_probe_ci95": dci}


def _split_validation(data, seed: int = 0):
    """(data with 20 meta-train topics, the 5 meta-validation topic ids)."""
    rng = np.random.default_rng(seed)
    val = sorted(rng.choice(data.train_classes, VAL_TOPICS, replace=False).tolist())
    return dataclasses.replace(data, train_classes=[c for c in data.train_classes if c not in val]), val


def part_meta(cfg_of, cache) -> dict:
    from tunewright.meta.algorithms import ALGORITHMS
    from tunewright.meta.data import load_meta_data
    from tunewright.meta.core import mean_ci
    from tunewright.meta.driver import (episode_accuracies, evaluate_episodes, finetune_accuracies, identity_encoder,
                                        meta_learn, meta_test_sampler, pretrain_classifier)

    t0 = time.time()
    cfg0 = cfg_of({**META_TEXT, "meta": {**META_TEXT["meta"], "k_shot": 5}})
    data, val = _split_validation(load_meta_data(cfg0, cache))
    feature_seconds = round(time.time() - t0, 1)
    rows, choices = [], []
    t0 = time.time()
    trunk = pretrain_classifier(cfg0, data, epochs=10)
    pretrain_seconds = round(time.time() - t0, 1)
    for k in (1, 5):
        cfg = cfg_of({**META_TEXT, "meta": {**META_TEXT["meta"], "k_shot": k}})
        val_s, test_s = meta_test_sampler(cfg, data, val, seed_offset=3), meta_test_sampler(cfg, data)
        for name, encoder, head_only in (("linear probe on MiniLM features", identity_encoder(data), True),
                                         ("fine-tune pre-trained trunk (Chen et al. 2019 baseline)", trunk, False)):
            t0 = time.time()
            scored = [(mean_ci(finetune_accuracies(encoder, data.x, val_s, VAL_EPISODES, head_only=head_only, **g))[0], g)
                      for g in BASELINE_GRID]
            best, g = max(scored, key=lambda t: t[0])
            accs = finetune_accuracies(encoder, data.x, test_s, cfg.meta.test_episodes, head_only=head_only, **g)
            if head_only:
                probe = accs                    # the reference every other row is paired with
            rows.append({"algorithm": name, "k_shot": k, **_scores(accs, probe), "val_acc": best,
                         "setting": g, "seconds": round(time.time() - t0, 1)})
            choices.append({"algorithm": name, "k_shot": k, "grid": [[a, s] for a, s in scored]})
            print(rows[-1], flush=True)
        for algo_name, grid in GRIDS.items():
            algo = ALGORITHMS[algo_name]
            scored = []
            for g in grid:
                c = cfg_of({**META_TEXT, "meta": {**META_TEXT["meta"], "k_shot": k, **g,
                                                  "test_inner_steps": 2 * g.get("inner_steps", 0)}})
                t0 = time.time()
                net, state = meta_learn(c, data, algo)
                secs = round(time.time() - t0, 1)
                va, _ = evaluate_episodes(net, data.x, val_s, VAL_EPISODES, algo, inner_lr=c.meta.inner_lr,
                                          steps=c.meta.test_inner_steps, zero_head=c.meta.zero_head)
                scored.append((va, g, net, c, secs))
                print({"algorithm": algo_name, "k_shot": k, **g, "val_acc": round(va, 4), "seconds": secs}, flush=True)
            va, g, net, c, secs = max(scored, key=lambda t: t[0])
            accs = episode_accuracies(net, data.x, test_s, c.meta.test_episodes, algo, inner_lr=c.meta.inner_lr,
                                      steps=c.meta.test_inner_steps, zero_head=c.meta.zero_head)
            rows.append({"algorithm": algo_name, "k_shot": k, **_scores(accs, probe), "val_acc": va,
                         "setting": g, "seconds": secs})
            choices.append({"algorithm": algo_name, "k_shot": k, "grid": [[a, s] for a, s, *_ in scored]})
            print(rows[-1], flush=True)
    names = data.names
    return {"rows": rows, "grid": choices, "settings": {**META_TEXT, "val_topics": VAL_TOPICS,
                                                         "val_episodes": VAL_EPISODES, "baseline_grid": BASELINE_GRID},
            "classes": {"train": [names[c] for c in data.train_classes], "val": [names[c] for c in val],
                        "test": [names[c] for c in data.test_classes], "excluded": data.excluded},
            "examples": len(data.x), "feature_seconds": feature_seconds, "pretrain_seconds": pretrain_seconds}


def part_meta_curve(cfg_of, cache) -> dict:
    """The curve below, on the same data and topic split as part_meta."""
    from tunewright.meta.data import load_meta_data
    cfg0 = cfg_of({**META_TEXT, "meta": {**META_TEXT["meta"], "k_shot": 5}})
    data, val = _split_validation(load_meta_data(cfg0, cache))
    return {"curve": overfitting_curve(cfg_of, data, val), "episodes": VAL_EPISODES}


def overfitting_curve(cfg_of, data, val) -> list[dict]:
    from tunewright.meta.algorithms import ALGORITHMS
    from tunewright.meta.core import EpisodeSampler
    from tunewright.meta.driver import build_net, evaluate_episodes, meta_learn, meta_test_sampler

    out = []
    for k in (1, 5):
        for algo_name, g in CURVE:
            algo = ALGORITHMS[algo_name]
            for it in CURVE_ITERATIONS:
                c = cfg_of({**META_TEXT, "meta": {**META_TEXT["meta"], "k_shot": k, **g, "meta_iterations": it,
                                                  "test_inner_steps": 2 * g.get("inner_steps", 0)}})
                if it:
                    net = meta_learn(c, data, algo)[0]
                else:
                    import torch
                    torch.manual_seed(c.train.seed)
                    net = build_net(c, data)
                # meta-train topics: fresh episodes (another seed) of the same topics and documents
                pools = {"meta-train topics": EpisodeSampler(data.y.numpy(), data.train_classes, 5, k, 10, seed=77),
                         "meta-validation": meta_test_sampler(c, data, val, seed_offset=3),
                         "meta-test": meta_test_sampler(c, data)}
                row = {"algorithm": algo_name, "k_shot": k, "iterations": it, **g}
                for name, sampler in pools.items():
                    row[name] = evaluate_episodes(net, data.x, sampler, VAL_EPISODES, algo, inner_lr=c.meta.inner_lr,
                                                  steps=c.meta.test_inner_steps, zero_head=c.meta.zero_head)[0]
                out.append(row)
                print(row, flush=True)
    return out


def table_meta_curve(r) -> str:
    head = ("| method | shots | meta-iterations | meta-train topics | meta-validation | meta-test |\n"
            "|---|---:|---:|---:|---:|---:|\n")
    return head + "\n".join(f"| {x['algorithm']} ({x['trunk']} trunk, inner {x.get('inner_lr', '-')} x "
                            f"{x.get('inner_steps', '-')}) | {x['k_shot']} | {x['iterations']} | "
                            f"{x['meta-train topics']:.3f} | {x['meta-validation']:.3f} | {x['meta-test']:.3f} |"
                            for x in r.get("curve", [])) + "\n"


def table_meta(r) -> str:
    head = ("| method | 5-way 1-shot | 5-way 5-shot | minus the linear probe, same episodes (1; 5) | setting chosen "
            "on meta-validation (1-shot; 5-shot) | seconds (1; 5) |\n|---|---:|---:|---|---|---|\n")
    by = {}
    for x in r["rows"]:
        by.setdefault(x["algorithm"], {})[x["k_shot"]] = x
    lines = []
    for a, v in by.items():
        cell = lambda k: f"{v[k]['test_acc']:.3f} ± {v[k]['ci95']:.3f}" if k in v else "-"
        sett = "; ".join(", ".join(f"{kk}={vv}" for kk, vv in v[k]["setting"].items()) or "-" for k in (1, 5) if k in v)
        paired = "; ".join(f"{v[k]['vs_probe']:+.3f} ± {v[k]['vs_probe_ci95']:.3f}" for k in (1, 5) if k in v)
        lines.append(f"| {a} | {cell(1)} | {cell(5)} | {paired} | {sett} | "
                     f"{'; '.join(str(v[k]['seconds']) for k in (1, 5) if k in v)} |")
    return head + "\n".join(lines) + "\n"
