"""Smoke test of benchmarks/bench_trainer.py: every variant runs and reports a positive speed.

tiny-bert (2 layers, hidden 32, built from a config) at batch 8 and max_length 32, 2 timed steps after
1 warmup step, one torch thread, all variants in this process (the real benchmark runs each in its own process).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_trainer.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_trainer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def torch_globals():
    """tunewright seeds with deterministic algorithms on and the variants set the thread count:
    put both back so later tests see what they would have seen."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det)
    torch.utils.deterministic.fill_uninitialized_memory = fill


@pytest.mark.assets
@pytest.mark.timeout(60)
def test_every_variant_reports_positive_speed(torch_globals, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # the HF Trainer may write into the working directory
    bench = load_bench()
    # one thread: a loaded 2-core machine stalls 2-thread parallel regions; this test checks plumbing, not speed
    cfg = bench.BenchConfig(model="tiny-bert", steps=2, warmup=1, batch_size=8, max_length=32, threads=1)
    report = bench.run_benchmark(cfg, bench.VARIANTS, subprocesses=False, rounds=1)

    assert set(report["results"]) == set(bench.VARIANTS)
    for name, r in report["results"].items():
        assert r["samples_per_s"] > 0, name
        assert r["timed_samples"] == cfg.steps * cfg.batch_size, name
        assert r["peak_rss_mb"] > 0, name
    res = report["results"]
    assert res["tunewright_fixed"]["mean_padded_len"] == res["hand_fixed"]["mean_padded_len"] == cfg.max_length
    # A compares identical models; B's Trainer model adds BERT's pooler (H*H + H parameters)
    assert res["tunewright_fixed"]["trainable_params"] == res["hand_fixed"]["trainable_params"]
    assert set(report["comparisons"]) == {"A", "B"}
    assert "| A. fixed shape | tunewright_fixed |" in bench.markdown(report)
