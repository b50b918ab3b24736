"""What a figure was measured on: the CPU model, its widest matrix instructions and the cores this
process may use (and the GPU, when one ran it).

Machines of one kind differ by about 2x here (Intel Xeon with AMX against AMD EPYC with AVX2 only), so
every summary and benchmark table records this next to its timings.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The `model name` of /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_features() -> list[str]:
    """The matrix/vector extensions that decide CPU training speed, widest first (Linux only)."""
    try:
        flags = next((set(line.split(":", 1)[1].split()) for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), set())
    except OSError:
        return []
    named = [("amx_bf16", "amx"), ("avx512_bf16", "avx512-bf16"), ("avx512f", "avx512"), ("avx2", "avx2")]
    return [name for flag, name in named if flag in flags]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def describe(device: str = "cpu") -> str:
    """One line, e.g. 'AMD EPYC (avx2), 2 cores' or 'NVIDIA H100 80GB HBM3'."""
    if str(device).startswith("cuda"):
        import torch
        return torch.cuda.get_device_name(torch.device(device))
    feats = cpu_features()
    return f"{cpu_model()}{f' ({feats[0]})' if feats else ''}, {cores()} cores"
