"""Measuring a benchmark process: its peak and current RSS, step-end clocks, and how busy the rest of
the machine was meanwhile (other jobs share these cores). Shared by bench_peft.py, bench_rss.py and
bench_trainer.py.
"""
from __future__ import annotations

import os
import resource
import time


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024.0


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine has spent busy since boot (all cores; /proc/stat, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def others_cpu_share(seconds: float, own_cpu_seconds: float, busy_seconds: float) -> float:
    """Share of the machine's cores that OTHER processes used over a window (0: we had it alone)."""
    return max(0.0, busy_seconds - own_cpu_seconds) / (seconds * (os.cpu_count() or 1))


def wait_until_quiet(max_wait_s: float, limit: float = 0.25, sample_s: float = 5.0) -> float:
    """Wait (up to max_wait_s) until other processes use less than `limit` of the machine; return their last share."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        busy0, own0, t0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
        time.sleep(sample_s)
        share = others_cpu_share(time.perf_counter() - t0, time.process_time() - own0, machine_busy_seconds() - busy0)
        if share < limit or time.perf_counter() >= deadline:
            return share


class StepMarks:
    """Step-end wall times and the peak RSS at the last one. A tunewright callback as it stands
    (`callbacks=[marks]`); the HF Trainer's callbacks call `mark()`."""

    def __init__(self):
        self.times: list[float] = []
        self.peak_rss_mb = 0.0     # up to the last step marked (evaluation and saving come after)

    def mark(self) -> None:
        self.times.append(time.perf_counter())
        self.peak_rss_mb = peak_rss_mb()

    def on_step_end(self, ctx) -> None:
        self.mark()


class StepClock:
    """Step-end timestamps plus, per step, the samples and padded shape the embedding layer saw."""

    def __init__(self):
        self.ends: list[float] = []
        self.cpu_ends: list[float] = []   # process CPU time (all threads): less sensitive to other load
        self.busy_ends: list[float] = []  # machine-wide busy CPU-seconds: how much OTHER work ran meanwhile
        self.samples: list[int] = []
        self.padded_tokens: list[int] = []
        self._samples = self._tokens = 0
        self.threads_seen: set[int] = set()
        self.rss_at_start = self.peak_rss_train = 0.0

    def mark_start(self) -> None:
        """Call when training starts: RSS now is the model + data + framework, before any step."""
        self.rss_at_start = current_rss_mb()

    def watch(self, embeddings) -> None:
        """Count batches at the word-embedding module: input_ids (B, T) is its first argument."""
        def hook(_module, args):
            b, t = args[0].shape
            self._samples += b
            self._tokens += b * t
        embeddings.register_forward_pre_hook(hook)

    def step_end(self) -> None:
        import torch
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())
        self.busy_ends.append(machine_busy_seconds())
        self.samples.append(self._samples)
        self.padded_tokens.append(self._tokens)
        self._samples = self._tokens = 0
        self.threads_seen.add(torch.get_num_threads())
        self.peak_rss_train = peak_rss_mb()

    def result(self, warmup: int, steps: int) -> dict:
        w, s = warmup, steps
        if len(self.ends) != w + s:
            raise RuntimeError(f"expected {w + s} optimizer steps, the clock saw {len(self.ends)}")
        seconds = self.ends[-1] - self.ends[w - 1]
        cpu_seconds = self.cpu_ends[-1] - self.cpu_ends[w - 1]
        samples = sum(self.samples[w:])
        others = others_cpu_share(seconds, cpu_seconds, self.busy_ends[-1] - self.busy_ends[w - 1])
        durations = [b - a for a, b in zip(self.ends[w - 1:], self.ends[w:])]
        return {"timed_steps": s, "timed_samples": samples, "timed_seconds": round(seconds, 3),
                "samples_per_s": round(samples / seconds, 3),
                "samples_per_cpu_s": round(samples / cpu_seconds, 3),
                "others_cpu_share": round(others, 3),   # of all cores, used by other processes during the timed steps
                "s_per_step": round(seconds / s, 3),
                "step_seconds": [round(d, 3) for d in durations],
                "mean_padded_len": round(sum(self.padded_tokens[w:]) / max(samples, 1), 1),
                "rss_before_train_mb": round(self.rss_at_start, 1),
                "peak_rss_mb": round(self.peak_rss_train, 1),      # process peak up to the last timed step
                "torch_threads": sorted(self.threads_seen)}
