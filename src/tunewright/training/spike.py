"""Loss-spike rollback: go back to the last good checkpoint at a lower LR (`train.spike_factor`).

A spike is a step loss over k times the median of the last `spike_window` step losses (`is_spike`;
the median, not the mean, so one earlier spike does not raise the bar). Off by default
(`train.spike_factor: null`): no callback is added, and the loop runs exactly as without this file.

When a step spikes (checked at its accumulation boundary, before its optimizer step, so the spiking
step is never applied), `LossSpikeRollback`:

1. picks the newest valid checkpoint saved *before* the current step (`checkpoint_before`). Not one saved
   at this very step: from it the run would replay the same batch on the same weights with the same
   RNG, and spike again;
2. asks the loop to rewind to it (`ctx.state.rewind_to`; training/rewind.py restores weights, optimizer,
   scheduler, callback states, RNG and the loop's position, and deletes the newer checkpoints);
3. on `on_rewind`, multiplies every param group's LR and the scheduler's base LRs by `spike_lr_factor`
   (`scale_lr`), so the schedule keeps its shape at the lower level and later checkpoints carry it.
   The factors compound: the callback keeps the run's LR scale (0.5, 0.25, ...) in every checkpoint, and
   a second rollback to a checkpoint saved before the first one scales its LR by 0.25, not 0.5 again
   (which would replay the first retry exactly, and spike exactly as it did);
4. logs a metrics row `{"event": "rollback", "step", "loss", "median", "lr", "to_step", "rollback"}`
   and prints a note.

No valid checkpoint before this step (early in the run): a note, a row with `"event": "spike"` and
`"action": "continued: no checkpoint before this step"`, and training goes on with the step.
After `max_rollbacks` rollbacks the next spike rewinds once more, without lowering the LR, and stops
the run (`stop_reason`, `"event": "rollback_and_stop"`): the last good weights are what the run ends
with, and a spike that keeps coming back at ever lower LRs points at the data, since the replay
trains on the same batches in the same order.

The loss history and the number of rollbacks go into every checkpoint (`state_dict`), so a run
resumed after a rollback keeps the lower LR, counts on from there and detects exactly as before.
"""
from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .checkpoint import list_checkpoints, verify_checkpoint
from .rewind import step_of


def is_spike(loss: float, history: Sequence[float], k: float, min_history: int = 1) -> bool:
    """True when `loss` > k x median(history).

    False while `history` holds fewer than `min_history` losses, when the median is not positive
    (a ratio to a loss that can be zero or negative says nothing), and for a non-finite loss (the
    loop skips those steps itself: `train.max_nonfinite_steps`).
    """
    if len(history) < max(min_history, 1) or not math.isfinite(loss):
        return False
    median = statistics.median(history)
    return median > 0 and loss > k * median


def scale_lr(optimizer, scheduler, factor: float) -> None:
    """Multiply every param group's LR by `factor`, and the scheduler's base LRs with it.

    tunewright's schedules are LambdaLR: lr(step) = base_lr x multiplier(step), so scaling the base LRs
    keeps the schedule's shape at the lower level (scaling only the groups' `lr` would be undone by the
    next `scheduler.step()`). `initial_lr`, which torch schedulers keep in each group, follows too.
    """
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
        if "initial_lr" in group:
            group["initial_lr"] = group["initial_lr"] * factor
    if scheduler is not None and hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
        if hasattr(scheduler, "_last_lr"):          # what get_last_lr() reports until the next step
            scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def checkpoint_before(root, step: int, log: Callable[[str], Any] = print) -> Path | None:
    """The newest checkpoint under `root` saved before `step` that verifies, or None. Invalid ones are
    skipped with a message naming them and the reason (as `latest_valid` does)."""
    for path in reversed(list_checkpoints(root)):
        if step_of(path) >= step:
            continue
        reason = verify_checkpoint(path)
        if reason is None:
            return path
        log(f"skipping invalid checkpoint {path}: {reason}")
    return None


class LossSpikeRollback:
    """The callback (see the module docstring). `log(row)` writes a metrics row (run.py: to every tracker)."""

    def __init__(self, root, factor: float, window: int = 20, lr_factor: float = 0.5, max_rollbacks: int = 3,
                 log: Callable[[dict], None] | None = None, stream=None):
        self.root, self.factor, self.window = Path(root), factor, window
        self.lr_factor, self.max_rollbacks = lr_factor, max_rollbacks
        self.log, self.stream = log, stream
        self.history: list[float] = []
        self.rollbacks = 0
        self.lr_scale = 1.0                   # product of the LR factors applied so far (saved in checkpoints)
        self._pending: dict | None = None     # the rollback asked for, until the loop has rewound

    def _note(self, text: str) -> None:
        print(f"note: {text}", file=self.stream or sys.stderr, flush=True)

    def _row(self, row: dict) -> None:
        if self.log is not None:
            self.log(row)

    def on_before_optimizer_step(self, ctx) -> None:
        st = ctx.state
        loss = float(st.step_loss)                # the one host sync this adds, only when the option is on
        if not is_spike(loss, self.history, self.factor, self.window):
            self.history = (self.history + [loss])[-self.window:]
            return
        median = statistics.median(self.history)
        row = {"step": st.step + 1, "epoch": round(st.epoch_float, 4), "split": "train", "loss": loss,
               "median": median, "spike_factor": self.factor}
        what = f"loss spike at step {st.step + 1}: loss {loss:.4g} > {self.factor:g} x median {median:.4g}"
        target = checkpoint_before(self.root, st.step, log=self._note)
        if target is None:
            self._note(f"{what}; no valid checkpoint before step {st.step} in {self.root} to roll back to "
                       f"(checkpoint.every_steps sets how often one is written); continuing")
            self._row({**row, "event": "spike", "action": "continued: no checkpoint before this step",
                       "lr": ctx.optimizer.param_groups[0]["lr"]})
            self.history = (self.history + [loss])[-self.window:]
            return
        stop = self.rollbacks >= self.max_rollbacks
        self._pending = {**row, "to_step": step_of(target), "checkpoint": str(target), "stop": stop, "what": what,
                         "count": self.rollbacks, "lr_scale": self.lr_scale * (1.0 if stop else self.lr_factor)}
        st.rewind_to = str(target)
        if stop:
            st.should_stop = True
            st.stop_reason = (f"{what} after {self.rollbacks} rollback(s) (train.max_rollbacks); rolled back to "
                              f"step {step_of(target)} and stopped")

    def on_rewind(self, ctx) -> None:
        p, self._pending = self._pending, None
        if p is None:
            return                                # another callback's rewind: the restored state stands
        stop, what, checkpoint, count, scale = (p.pop(k) for k in ("stop", "what", "checkpoint", "count", "lr_scale"))
        # The rewind restored the checkpoint's count and LR scale; this rollback comes on top of the run's own.
        self.rollbacks = count + (0 if stop else 1)
        scale_lr(ctx.optimizer, ctx.scheduler, scale / self.lr_scale)   # from the checkpoint's scale to the new one
        self.lr_scale = scale
        lr = ctx.optimizer.param_groups[0]["lr"]
        self._row({**p, "event": "rollback_and_stop" if stop else "rollback", "lr": lr, "lr_scale": scale,
                   "rollback": self.rollbacks})
        if stop:
            self._note(f"{what}; {self.rollbacks} rollback(s) already (train.max_rollbacks): rolled back to "
                       f"{checkpoint} and stopped. A spike that returns at ever lower LRs points at the data "
                       f"(the replay trains on the same batches)")
        else:
            self._note(f"{what}; rolled back to {checkpoint} (step {p['to_step']}), LR x{scale:g} of the "
                       f"configured one -> {lr:.3g} (rollback {self.rollbacks} of at most {self.max_rollbacks})")

    def state_dict(self) -> dict:
        return {"history": list(self.history), "rollbacks": self.rollbacks, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict) -> None:
        self.history = [float(x) for x in state["history"]][-self.window:]
        self.rollbacks, self.lr_scale = int(state["rollbacks"]), float(state["lr_scale"])


def spike_callbacks(t, root, trackers: Sequence = ()) -> list:
    """`[LossSpikeRollback]` as the train config `t` says, writing its rows to `trackers`; `[]` when
    `train.spike_factor` is null (the default)."""
    if t.spike_factor is None:
        return []

    def log(row: dict) -> None:
        for tracker in trackers:
            tracker.log_metrics(row)
    return [LossSpikeRollback(root, t.spike_factor, t.spike_window, t.spike_lr_factor, t.max_rollbacks, log=log)]
