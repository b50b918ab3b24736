"""Transparent huge pages for PyTorch's CPU allocator, asked for before torch allocates anything.

PyTorch (2.2 and later, `c10/core/impl/alloc_cpu.cpp`) reads the environment variable
`THP_MEM_ALLOC_ENABLE` once, at its first CPU allocation. When it is set, every CPU tensor of
2 MB or more is page-aligned and `madvise(MADV_HUGEPAGE)`d, so the kernel backs it with 2 MB pages.

Why tunewright turns it on: on a CPU each training step allocates and frees hundreds of MB of
activations, and with dynamic padding in changing sizes. With 4 KB pages every step faults
them in one page at a time, and the freed blocks fragment glibc's heap (see `MallocTrim` in
training/callbacks.py). On 2 MB pages the faults are 512 times fewer. What was measured, MiniLM
LoRA on 2 CPU cores, with `malloc_trim` after every step in both arms (benchmarks/bench_rss.py,
benchmarks/README.md): the peer job's peak RSS fell from 2,091 to 1,659 MB (0.93x to 0.74x the HF
Trainer's) at the same samples/s, and the 256-token race's from 4,345 to 3,122 MB. That the peak
drops, not only the fault count, is an observation, not a mechanism we have pinned down. Without
trimming and bucketing it went the other way (partly used huge pages count whole), so this is a
default for tunewright's loop, not advice for every program.

Why it is not a config key: a config is read long after torch has made its first tensor, and
from then on the variable is never read again. So the request is made by the entry point, before
torch allocates: the `tunewright` command (cli/main.py) calls `request()` first thing. Importing
the library changes nothing; in Python, call it yourself before your first tensor:

    import tunewright.huge_pages
    tunewright.huge_pages.request()        # THP_MEM_ALLOC_ENABLE=1 unless already set; 0 opts out

`request()` sets `THP_MEM_ALLOC_ENABLE=1` unless the environment already has the variable,
whatever its value (`THP_MEM_ALLOC_ENABLE=0` opts out). Like any environment variable it reaches
child processes. If torch allocated before the request, it comes too late; `status()` says so,
and a training run on a CPU prints a note.
Where the kernel's THP mode is `never`, the madvise fails quietly and nothing changes.
"""
from __future__ import annotations

import os
import sys

ENV = "THP_MEM_ALLOC_ENABLE"
KERNEL_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"
_requested = False                        # whether tunewright set the variable (not the user)


def request() -> bool:
    """Set THP_MEM_ALLOC_ENABLE=1 unless the user set it; Linux only. True when this call set it."""
    global _requested
    if not sys.platform.startswith("linux") or ENV in os.environ:
        return False
    os.environ[ENV] = "1"
    _requested = True
    return True


def active() -> bool:
    """Whether torch's CPU allocator advises huge pages now, i.e. the request took effect.

    Allocates one 3 MB tensor (never written, so no page is touched) and reads the kernel's flags
    for the mapping that holds it: `hg` in /proc/self/smaps' VmFlags is MADV_HUGEPAGE."""
    import torch
    probe = torch.empty(3 << 20, dtype=torch.uint8)
    return "hg" in _vm_flags(probe.data_ptr())


def _vm_flags(address: int) -> set[str]:
    """The VmFlags of the mapping that contains `address` (empty where /proc cannot be read)."""
    try:
        lines = open("/proc/self/smaps").read().splitlines()
    except OSError:
        return set()
    inside = False
    for line in lines:
        head = line.split(" ", 1)[0]
        if "-" in head and ":" not in head:           # "7f12a000-7f12c000 rw-p ...": a mapping starts
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and line.startswith("VmFlags:"):
            return set(line.split()[1:])
    return set()


def kernel_mode() -> str | None:
    """The kernel's THP mode (`always`, `madvise` or `never`), None where it cannot be read."""
    try:
        text = open(KERNEL_MODE).read()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else None


def status() -> str:
    """One word for the run summary: on, off (opted out), off (too late), or unavailable."""
    if active():
        return "on"
    if os.environ.get(ENV, "1") in ("0", ""):
        return f"off ({ENV}={os.environ.get(ENV)})"
    if not sys.platform.startswith("linux"):
        return "unavailable (not Linux)"
    if kernel_mode() == "never":               # requested in time, but the kernel declines huge pages
        return "off (kernel THP mode never)"
    return ("off (not requested before torch's first CPU tensor; call tunewright.huge_pages.request() first "
            f"(the tunewright command does), or export {ENV}=1)")
