"""Every task head end to end on tiny models (in-process, a few seconds each)."""
import json

import numpy as np
import pytest

import tunewright

WORDS = {"a": "goal match striker team", "b": "shares market stocks bank", "c": "rain storm wind cloud"}


def _texts(rng, n):
    keys = list(WORDS)
    rows = []
    for _ in range(n):
        picked = [k for k in keys if rng.random() < 0.5] or [keys[int(rng.integers(3))]]
        words = " ".join(rng.choice(WORDS[k].split()) for k in picked for _ in range(3))
        rows.append((words, picked))
    return rows


def test_multilabel(tmp_path):
    rng = np.random.default_rng(0)
    f = tmp_path / "ml.jsonl"
    f.write_text("".join(json.dumps({"text": t, "label": labels}) + "\n" for t, labels in _texts(rng, 120)))
    res = tunewright.train({"model": {"name": "tiny-bert"}, "task": "multilabel",
                            "data": {"train": str(f), "max_length": 24},
                            "train": {"epochs": 10, "batch_size": 8, "lr": 3e-3, "progress": "none"}},
                           output_dir=str(tmp_path / "runs"), run_name="ml")
    s = res.summary
    assert s["label_names"] == ["a", "b", "c"]
    assert {"accuracy", "macro_f1", "loss"} <= set(s["test"])
    assert s["test"]["macro_f1"] > 0.8  # learnable: labels are keyword sets


def test_regression(tmp_path):
    rng = np.random.default_rng(1)
    f = tmp_path / "reg.csv"
    lines = ["text,label"]
    for _ in range(120):
        k = int(rng.integers(1, 6))
        lines.append(f"{' '.join(['good'] * k + ['day'] * (6 - k))},{k / 5:.2f}")
    f.write_text("\n".join(lines) + "\n")
    res = tunewright.train({"model": {"name": "tiny-bert"}, "task": "regression",
                            "data": {"train": str(f), "max_length": 16},
                            "train": {"epochs": 10, "batch_size": 8, "lr": 3e-3, "progress": "none"}},
                           output_dir=str(tmp_path / "runs"), run_name="reg")
    s = res.summary
    assert {"mse", "mae", "r2"} <= set(s["test"]) and s["monitor"]["metric"] == "mse"
    assert s["test"]["r2"] > 0.5


def test_causal_lm_instruction_tuning(tmp_path):
    from pathlib import Path
    data = Path(__file__).resolve().parents[1] / "data" / "tiny_instruct.jsonl"
    res = tunewright.train({"model": {"name": "tiny-llama"}, "task": "causal_lm",
                            "data": {"train": str(data), "max_length": 48, "val_fraction": 0.2,
                                     "test_fraction": 0.2},
                            "train": {"epochs": 3, "batch_size": 4, "lr": 3e-3, "progress": "none"}},
                           output_dir=str(tmp_path / "runs"), run_name="lm")
    s = res.summary
    assert {"loss", "perplexity"} <= set(s["test"]) and s["test"]["perplexity"] == pytest.approx(
        np.exp(s["test"]["loss"]), rel=1e-6)
    rows = [json.loads(l) for l in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0]["loss"], [r for r in rows if r["split"] == "train"][-1]["loss"]
    assert last < first  # the loop lowers the LM loss
