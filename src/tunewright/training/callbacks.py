"""Callbacks are plain objects with optional `on_*` methods (see events.py for when each fires).

This file holds the dispatcher and the callbacks every run uses: logging rows to trackers,
progress output, early stopping, keeping the best model and writing resumable checkpoints, and
handing freed heap memory back to the OS.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .. import progress
from .events import EVENTS


class CallbackList:
    """Calls `on_<event>` on every callback that has it, in order."""

    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks)

    def fire(self, event: str, ctx, **kw) -> None:
        assert event in EVENTS, event
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(ctx, **kw)

    def transform(self, event: str, value, ctx, **kw):
        """Like fire, but each callback may return a replacement for `value` (e.g. loss + penalty)."""
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                out = fn(ctx, value, **kw)
                value = value if out is None else out
        return value

    def _keyed(self):
        seen: dict[str, int] = {}
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            yield (name if seen[name] == 1 else f"{name}#{seen[name]}"), cb

    def state_dict(self) -> dict:
        return {k: cb.state_dict() for k, cb in self._keyed() if hasattr(cb, "state_dict")}

    def load_state_dict(self, states: dict) -> None:
        for k, cb in self._keyed():
            if k in states and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(states[k])


class TrackerLogger:
    """Sends every logged row and evaluation to the trackers (metrics.jsonl always among them)."""

    def __init__(self, trackers):
        self.trackers = trackers

    def on_log(self, ctx, row: dict) -> None:
        for t in self.trackers:
            t.log_metrics(row)

    def on_evaluate(self, ctx, metrics: dict) -> None:
        for split, values in metrics.items():
            row = {"step": ctx.state.step, "epoch": ctx.state.epoch_float, "split": split, **values}
            for t in self.trackers:
                t.log_metrics(row)

    def on_nonfinite(self, ctx, loss: float, grad_norm: float) -> None:
        row = {"step": ctx.state.step, "epoch": ctx.state.epoch_float, "split": "train",
               "event": "nonfinite_step_skipped", "loss": loss, "grad_norm": grad_norm}
        for t in self.trackers:
            t.log_metrics(row)


class Progress:
    """A rich progress bar on a terminal; plain lines when output is not a TTY (CI, pipes)."""

    def __init__(self, mode: str = "auto", stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "rich" if self.stream.isatty() else "plain"
        self.mode = mode
        self._bar = None
        self._last_line = 0.0

    def on_fit_start(self, ctx) -> None:
        self._t0, self._samples = time.perf_counter(), 0
        self._step0 = ctx.state.step
        if self.mode == "rich":
            self._bar = progress.live_bar(self.stream, transient=False)     # the stream whose TTY chose this mode
            self._task = self._bar.add_task("train", total=ctx.state.total_steps, completed=ctx.state.step,
                                            info=f"{ctx.state.step}/{ctx.state.total_steps}")

    def on_batch_start(self, ctx, batch) -> None:
        first = next(iter(batch.values()))
        self._samples += int(first.shape[0])

    def _info(self, ctx, row) -> str:
        dt = max(time.perf_counter() - self._t0, 1e-9)
        return f"loss {row['loss']:.4f}  lr {row['lr']:.2e}  {self._samples / dt:.1f} samples/s"

    def on_log(self, ctx, row: dict) -> None:
        info = self._info(ctx, row)
        done = ctx.state.step - self._step0
        left = ctx.state.total_steps - ctx.state.step
        eta = (time.perf_counter() - self._t0) / max(done, 1) * left
        if self.mode == "rich":
            self._bar.update(self._task, completed=ctx.state.step,
                             info=f"{ctx.state.step}/{ctx.state.total_steps}  {info}  eta {eta:.0f}s")
        elif self.mode == "plain":
            print(f"step {ctx.state.step}/{ctx.state.total_steps} epoch {ctx.state.epoch_float:.2f}  {info}  "
                  f"eta {eta:.0f}s", file=self.stream, flush=True)

    def on_evaluate(self, ctx, metrics: dict) -> None:
        text = "  ".join(f"{split}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float))
                         for split, m in metrics.items())
        if self.mode == "rich":
            self._bar.console.print(f"eval @ step {ctx.state.step}: {text}")
        elif self.mode == "plain":
            print(f"eval @ step {ctx.state.step}: {text}", file=self.stream, flush=True)

    def on_nonfinite(self, ctx, loss: float, grad_norm: float) -> None:
        if self.mode != "none":
            print(f"warning: non-finite loss/gradient at step {ctx.state.step} (loss={loss}, grad_norm={grad_norm}); "
                  f"step skipped, weights unchanged", file=self.stream, flush=True)

    def on_fit_end(self, ctx) -> None:
        self.close()

    def close(self) -> None:
        """End the bar (and its line). Also called when fit() stopped early, by Ctrl-C or an error, and so
        never reached on_fit_end (tracking/run_log.finish): the next line does not run into the bar."""
        if self._bar is not None:
            progress.release(self._bar)
            self._bar = None


class EarlyStopping:
    """Stop after `patience` evaluations in a row without improvement of the monitored metric."""

    def __init__(self, patience: int):
        self.patience, self.bad = patience, 0

    def on_evaluate(self, ctx, metrics: dict) -> None:
        self.bad = 0 if ctx.state.improved else self.bad + 1
        if self.bad >= self.patience:
            ctx.state.should_stop = True
            ctx.state.stop_reason = f"early stopping: no improvement in {self.patience} evaluations"

    def state_dict(self) -> dict:
        return {"bad": self.bad}

    def load_state_dict(self, s: dict) -> None:
        self.bad = s["bad"]


class MallocTrim:
    """`malloc_trim(0)` after every `every`-th optimizer step (`train.malloc_trim_every`).

    Why: with dynamic padding each batch has its own shape, so the activations of one step are
    freed in sizes the next step cannot reuse, and glibc's heap grows past what any single step
    needs (MiniLM LoRA, 128 tokens, CPU: peak RSS 1.09-1.24x the HF Trainer's over four runs, and
    0.93-0.95x when trimmed after every step; benchmarks/bench_rss.py). Trimming returns the free
    pages; the cost is that the next step faults them in again (3-27% fewer samples/s over those
    runs). The default (`malloc_trim_every: null`) trims every step on a CPU and never on a GPU,
    where the host heap is not what runs out and a step takes milliseconds. A no-op, with
    `available` False, where the C library has no malloc_trim (musl, macOS, Windows).
    """

    def __init__(self, every: int, libc: Any = None, quiet: bool = False):
        import ctypes
        import ctypes.util
        if libc is None:
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            except OSError:
                libc = None
        self.every, self.trim = every, getattr(libc, "malloc_trim", None)
        self.available = self.trim is not None
        if not self.available and not quiet:   # quiet: the default asked, not the user
            print("note: train.malloc_trim_every: this C library has no malloc_trim; nothing is trimmed",
                  file=sys.stderr, flush=True)

    @staticmethod
    def resolve_every(every: int | None, device) -> int:
        """`train.malloc_trim_every` as a number: None means every step on a CPU, never elsewhere."""
        if every is None:
            return 1 if device.type == "cpu" else 0
        return every

    def on_step_end(self, ctx) -> None:
        if self.available and self.every > 0 and ctx.state.step % self.every == 0:
            self.trim(0)


class BestModelSaver:
    """Writes the model to `model/` whenever the monitored metric improves (safetensors)."""

    def __init__(self, save_fn: Callable[[Any], None]):
        self.save_fn = save_fn

    def on_evaluate(self, ctx, metrics: dict) -> None:
        if ctx.state.improved:
            self.save_fn(ctx.model)


class Checkpointer:
    """Resumable checkpoints every N steps, or at the end of every epoch when N is None.

    ``model_state(model) -> dict`` replaces the full state dict when only part of the model changes
    (a PEFT run: its trainable tensors and buffers; the frozen base is rebuilt identically on resume).
    ``gather(model, optimizer)``: a context giving the (model, optimizer) to write, or (None, None) on a
    rank that does not write; a sharded run (distributed/fsdp.py) gathers whole tensors there, and then
    every rank holds a Checkpointer.
    """

    def __init__(self, root: Path, every_steps: int | None, keep_last: int, callbacks: CallbackList,
                 model_state: Callable[[Any], dict] | None = None, record: dict | None = None,
                 gather: Callable | None = None):
        self.root, self.every_steps, self.keep_last, self.callbacks = Path(root), every_steps, keep_last, callbacks
        self.model_state = model_state
        self.record = record             # what made the run, for refusing a resume with changed settings
        self.gather = gather or _as_is

        self.last_saved_step: int | None = None

    def _save(self, ctx) -> None:
        if self.last_saved_step == ctx.state.step:
            return
        from .checkpoint import save_checkpoint
        trainer_state = {"loop": ctx.state.to_dict(), "callbacks": self.callbacks.state_dict()}
        with self.gather(ctx.model, ctx.optimizer) as (model, optimizer):
            if model is not None:
                save_checkpoint(self.root, ctx.state.step, model=model, optimizer=optimizer,
                                scheduler=ctx.scheduler, trainer_state=trainer_state, keep_last=self.keep_last,
                                model_state=self.model_state(model) if self.model_state else None,
                                record=self.record)
        self.last_saved_step = ctx.state.step

    def on_step_end(self, ctx) -> None:
        if self.every_steps and ctx.state.step % self.every_steps == 0 and ctx.state.step > 0:
            self._save(ctx)

    def on_epoch_end(self, ctx) -> None:
        if not self.every_steps:
            self._save(ctx)

    def on_fit_end(self, ctx) -> None:
        self._save(ctx)  # the final state, so a finished run can be extended or compared

    def on_rewind(self, ctx) -> None:
        self.last_saved_step = None  # the step saved last may come again, and its folder was deleted (rewind.py)


@contextlib.contextmanager
def _as_is(model, optimizer):
    yield model, optimizer


def is_finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))
