"""The methods and lm sections of bench_peft.py: one tunewright run per PEFT method, MiniLM on R8
(classification) and SmolLM2-135M on Friends lines (perplexity before and after).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _measure import peak_rss_mb
from _peft_job import LM_METHODS, THREADS, r8_config


def job_method(method: str, full: bool, train_rows: int) -> dict:
    from tunewright.run import train
    with tempfile.TemporaryDirectory() as out:
        over = {} if full else {"data.train_subset": train_rows}
        result = train(r8_config(method, out, method, **over))
        s = result.summary
    return {"method": method, "train_rows": s["sizes"]["train"], "test_rows": s["sizes"]["test"],
            "epochs": s["epochs_run"], "test_accuracy": s["test"]["accuracy"], "test_macro_f1": s["test"]["macro_f1"],
            "trainable_params": s["trainable_params"], "total_params": s["total_params"],
            "trainable_share": s["trainable_share"], "train_seconds": s["train_seconds"],
            "seconds_per_epoch": s["train_seconds"] / max(s["epochs_run"], 1e-9),
            "peak_rss_mb": round(peak_rss_mb(), 1), "best_epoch": s["best_epoch"]}


def friends_files(folder: Path, train_rows: int, test_rows: int, val_rows: int = 100) -> dict:
    """Seeded disjoint samples of Friends lines as JSONL: train, val and test (held out)."""
    import numpy as np
    from tunewright.assets.datasets import get_dataset
    lines = [t for t in get_dataset("friends").load()["train"]["text"] if len(t.split()) >= 4]
    order = np.random.default_rng(0).permutation(len(lines))
    parts = {"train": order[:train_rows], "val": order[train_rows:train_rows + val_rows],
             "test": order[train_rows + val_rows:train_rows + val_rows + test_rows]}
    paths = {}
    for split, idx in parts.items():
        paths[split] = str(folder / f"friends-{split}.jsonl")
        with open(paths[split], "w") as f:
            for i in idx:
                f.write(json.dumps({"text": lines[i]}) + "\n")
    return paths


def lm_config(method: str, out: str, files: dict) -> dict:
    return {"run_name": method, "output_dir": out, "task": "causal_lm", "model": {"name": "smollm2-135m"},
            "method": method, "data": {**files, "max_length": 48},
            "train": {"epochs": 1, "batch_size": 16, "num_threads": THREADS, "progress": "plain"},
            "prompt_tuning": {"init_text": "Lines of dialogue from the TV show Friends:"},
            "prefix_tuning": {"init_text": "Lines of dialogue from the TV show Friends:"},
            "checkpoint": {"keep_last": 1}}


def job_lm(method: str, full: bool, train_rows: int) -> dict:
    from tunewright.config.load import config_from_dict
    from tunewright.evaluate import evaluate_dataset
    from tunewright.run import prepare, train
    from tunewright.training.precision import resolve_precision
    with tempfile.TemporaryDirectory() as out:
        files = friends_files(Path(out), 8000 if full else train_rows, 1000 if full else 300)
        cfg = config_from_dict(lm_config(method, out, files))
        before = None
        if method == LM_METHODS[0]:                      # the base model's perplexity, once
            _, model, _, bundle = prepare(cfg)
            before = evaluate_dataset(model, bundle.test, bundle.collate, "causal_lm", None, 32,
                                      resolve_precision("fp32", "cpu"))["perplexity"]
            del model
        s = train(cfg).summary
    return {"method": method, "train_lines": s["sizes"]["train"], "test_lines": s["sizes"]["test"],
            "perplexity_before": before, "perplexity_after": s["test"]["perplexity"],
            "trainable_params": s["trainable_params"], "trainable_share": s["trainable_share"],
            "train_seconds": s["train_seconds"], "peak_rss_mb": round(peak_rss_mb(), 1)}
