"""Inference latency and throughput, measured the same way for every variant of a comparison.

What makes two variants' numbers comparable:
- the same inputs: the first `n_single` test examples at batch 1 and the same `n_batches` batches
  of 32 (text keeps each example's own length: dynamic padding, so the same examples give the same
  shapes in every variant);
- the same CPU threads (`torch.set_num_threads(threads)` for the measurement, restored after);
- the model in eval mode (dropout off, BatchNorm on running statistics) under
  `torch.inference_mode()` (no autograd bookkeeping);
- warm-up calls at each batch size before any timing (allocator, lazy init, oneDNN primitive
  caches), batches collated beforehand so collation is not timed;
- several repeats and the median, which one stray scheduler hiccup cannot move.

Adapters are timed as `load_run` returns them (unmerged). Merging LoRA or (IA)^3 into the base
weights (`tunewright.peft.merged_model`) removes their extra cost at inference.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def torch_threads(n: int | None):
    """Run the block with `n` intra-op threads (None: leave torch's setting), then restore it."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def measure_speed(model: torch.nn.Module, make_batch, n_examples: int, *, threads: int | None = None,
                  n_single: int = 20, n_batches: int = 3, batch_size: int = 32, warmup: int = 3,
                  repeats: int = 5) -> dict:
    """ms per sample at batch 1 and samples/s at `batch_size`.

    make_batch(indices) -> a batch dict on the model's device; indices wrap around `n_examples`.
    latency_ms_b1: median over `repeats` passes of the `n_single` examples (n_single x repeats calls).
    throughput_b32: median over `repeats` passes of `n_batches` batches, in samples/s.
    """
    was_training = model.training
    model.eval()
    singles = [make_batch([i % n_examples]) for i in range(n_single)]
    batches = [make_batch([(k * batch_size + j) % n_examples for j in range(batch_size)]) for k in range(n_batches)]
    single_s, batch_s = [], []
    with torch_threads(threads) as used, torch.inference_mode():
        for i in range(warmup):
            model(singles[i % len(singles)])
            model(batches[i % len(batches)])
        for _ in range(repeats):
            for b in singles:
                t0 = time.perf_counter()
                model(b)
                single_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for b in batches:
                model(b)
            batch_s.append(time.perf_counter() - t0)
    model.train(was_training)
    return {"latency_ms_b1": round(1000 * float(np.median(single_s)), 3),
            "throughput_b32": round(batch_size * n_batches / float(np.median(batch_s)), 2),
            "threads": used, "calls_b1": len(single_s), "repeats": repeats}
