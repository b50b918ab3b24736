"""Progress of the long phases outside the training loop: a count, a rate and an ETA.

Tokenizing a large set, the head warm start's forward pass, the feature cache, evaluation, the GGUF
conversion, compare's variants and tune's trials can each take minutes on a CPU; without a line a
user cannot tell a slow phase from a hung one.

- `track(items, label)` wraps an iterable; `phase(label, total)` is the same as a context manager
  with `.advance(n)` for loops that count in examples, not items.
- The display is rich's progress bar on a terminal (the same one `fit()` shows, with a count and
  time remaining) and plain lines in CI and pipes: one when the phase has run for `quiet_s` seconds,
  then at most one every `every_s` seconds, then a closing line with the total time. A phase that
  ends within `quiet_s` prints nothing, so short runs and tests stay quiet.
- `outer=True` (compare's variants, tune's trials) prints one plain line per item, on a terminal too:
  each item runs `fit()`, whose own bar would fight a second live display.
- The mode is `train.progress` (auto, rich, plain, none). `run.train` sets it for its phases with
  `use(mode)`; under torchrun only rank 0 shows anything.

Why not tqdm: rich is already the terminal library here (the training bar, tables), and mixing the
two breaks each other's redraws. rich has no throttled plain-text mode for pipes, which is the
small part written here.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
from typing import Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")
MODES = ("auto", "rich", "plain", "none")
QUIET_S = 2.0     # a phase shorter than this prints nothing
EVERY_S = 10.0    # plain mode: at most one line this often
_mode: contextvars.ContextVar[str] = contextvars.ContextVar("tunewright_progress", default="auto")


@contextlib.contextmanager
def use(mode: str) -> Iterator[None]:
    """Phases started inside this block show progress as `mode` (train.progress)."""
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r}: expected one of {', '.join(MODES)}")
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


def resolve(mode: Optional[str] = None, stream=None) -> str:
    """`mode` (default: the one `use` set) as rich, plain or none for this process and stream."""
    mode = mode or _mode.get()
    if os.environ.get("RANK", "0") != "0":       # torchrun: the other ranks stay quiet
        return "none"
    if mode == "auto":
        stream = stream or sys.stderr
        return "rich" if getattr(stream, "isatty", lambda: False)() else "plain"
    return mode


_live = None     # the rich bar on screen now (fit()'s, or a phase's): later phases add rows to it


def live_bar(stream=None, transient: bool = True):
    """A started rich Progress with the columns every bar here shows; rows are tasks with an `info` field.
    `transient`: the bar goes when it stops (a phase leaves its closing line instead); fit()'s bar stays,
    ending with a newline, so a stopped run's last line is its last step."""
    global _live
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    # The count, rate and ETA are each row's `info` text (Phase.line, fit()'s Progress): rich's own
    # time-remaining column assumes every unit costs the same, which length-sorted batches do not.
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                   TimeElapsedColumn(), transient=transient, console=Console(file=stream or sys.stderr))
    bar.start()
    _live = bar
    return bar


def release(bar) -> None:
    global _live
    bar.stop()
    if _live is bar:
        _live = None


def _seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Phase:
    """One phase: `advance(n)` after each n units done; `close()` (or leaving the `with`) ends it."""

    def __init__(self, label: str, total: Optional[int], unit: str = "examples", *, mode: Optional[str] = None,
                 stream=None, quiet_s: Optional[float] = None, every_s: Optional[float] = None, outer: bool = False,
                 clock=time.monotonic, work_total: Optional[float] = None):
        # work_total: what the time is proportional to, when not the count (the padded token positions of
        # length-sorted batches: the first examples are the shortest, so a count alone would promise too much).
        self.label, self.total, self.unit, self.work_total, self.work = label, total, unit, work_total, 0.0
        self.stream = stream or sys.stderr
        self.mode = resolve(mode, self.stream)
        if outer and self.mode == "rich":
            self.mode = "plain"
        self.quiet_s = QUIET_S if quiet_s is None else quiet_s
        self.every_s = EVERY_S if every_s is None else every_s
        self.outer, self.clock = outer, clock
        self.done, self.t0, self._last, self._printed, self._bar = 0, clock(), None, False, None
        if self.mode == "rich":
            # Inside fit() the training bar is live: this phase (an evaluation) becomes a second row of
            # it, because two live displays on one terminal overwrite each other.
            self._own = _live is None
            self._bar = live_bar(self.stream) if self._own else _live
            self._task = self._bar.add_task(label, total=work_total or total, info=self.line(label=False))

    def eta(self) -> Optional[float]:
        """Seconds left at the rate so far; None before the first unit or without a total."""
        if not self.total or self.done <= 0:
            return None
        if self.work_total and self.work > 0:
            return (self.clock() - self.t0) / self.work * max(self.work_total - self.work, 0)
        return (self.clock() - self.t0) / self.done * max(self.total - self.done, 0)

    def line(self, label: bool = True) -> str:
        elapsed = self.clock() - self.t0
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        rate = ""
        if elapsed > 0 and self.done:      # slow items (a variant, a trial) read better as seconds each
            r = self.done / elapsed
            rate = f"  {r:.1f} {self.unit}/s" if r >= 1 else f"  {elapsed / self.done:.0f} s each"
        eta = self.eta()
        text = f"{count} {self.unit}{rate}" + (f"  eta {_seconds(eta)}" if eta is not None else "")
        return f"{self.label}: {text}" if label else text

    def advance(self, n: int = 1, note: str = "", work: float = 0.0) -> None:
        self.done += n
        self.work += work
        if self.mode == "rich":
            self._bar.update(self._task, completed=self.work if self.work_total else self.done,
                             info=self.line(label=False))
        elif self.mode == "plain":
            now = self.clock()
            due = self.outer or (now - self.t0 >= self.quiet_s and
                                 (self._last is None or now - self._last >= self.every_s))
            if due:
                self._last, self._printed = now, True
                print(self.line() + (f"  {note}" if note else ""), file=self.stream, flush=True)

    def say(self, text: str) -> None:
        """A line of its own, for outer phases: which item starts now, with the ETA so far."""
        if self.mode == "none":
            return
        eta = self.eta()
        msg = f"{self.label} [{self.done + 1}/{self.total}]: {text}" + (f"  (eta {_seconds(eta)})" if eta else "")
        if self._bar is not None:
            self._bar.console.print(msg)
        else:
            print(msg, file=self.stream, flush=True)
        self._printed = True

    def close(self) -> None:
        took = self.clock() - self.t0
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.remove_task(self._task)
            if self._own:
                release(bar)
            if took >= self.quiet_s:        # above a live bar (fit()'s) through its console, else plainly
                text = f"{self.label}: {self.done} {self.unit} in {_seconds(took)}"
                bar.console.print(text) if not self._own else print(text, file=self.stream, flush=True)
        elif self.mode == "plain" and (self._printed or took >= self.quiet_s):
            print(f"{self.label}: {self.done} {self.unit} in {_seconds(took)}", file=self.stream, flush=True)

    def __enter__(self) -> "Phase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def phase(label: str, total: Optional[int], unit: str = "examples", **kw) -> Phase:
    return Phase(label, total, unit, **kw)


def padded_work(batches, lengths) -> Optional[float]:
    """Positions a forward pass computes over `batches` of rows with token `lengths`: each batch pads to its
    longest row (None without lengths, e.g. images: every example costs the same)."""
    if lengths is None:
        return None
    return float(sum(len(b) * max((lengths[i] for i in b), default=0) for b in batches))


def track(items: Iterable[T], label: str, total: Optional[int] = None, unit: str = "items",
          size=None, work=None, **kw) -> Iterator[T]:
    """Yield `items`, advancing after each by `size(item)` (default 1) units and `work(item)` work."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)                           # type: ignore[arg-type]
    with Phase(label, total, unit, **kw) as p:
        for item in items:
            yield item
            p.advance(size(item) if size else 1, work=work(item) if work else 0.0)
