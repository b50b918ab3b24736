"""Resumable drivers that call `fit()` several times in order (continual: one phase per task;
multi-task: each single-task baseline, then the joint run).

    checkpoints/
      phase-2/step-000040/     a checkpoint inside phase 2's fit() (Checkpointer, every_steps)
      after-phase-1/step-000120/   phase 1 finished: what the next phases need (the model, a method's
                               state, the results so far); its step is the whole run's step count

Both kinds are written by `checkpoint.save_checkpoint` (safetensors, atomic, verified), as `tunewright
train`'s. On resume the newest valid "after" checkpoint says how many phases are done and restores
their state; the first unfinished phase continues from its own newest checkpoint, exactly, or starts
again when it has none. `resume_step` is the step metrics.jsonl is cut back to, so the log reads as
one uninterrupted run.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Optional

from torch import nn

from .checkpoint import latest_valid, load_checkpoint, save_checkpoint, saved_step


class PhaseCheckpoints:
    def __init__(self, root, resume: bool, log=print):
        self.root, self.log = Path(root), log
        self.done, self.after, self.current = 0, None, None   # phases finished; their checkpoint; mid-phase one
        if resume:
            for path in sorted(self.root.glob("after-phase-*"), key=_index, reverse=True):
                found = latest_valid(path, log)
                if found is not None:
                    self.done, self.after = _index(path) + 1, found
                    break
            self.current = latest_valid(self.phase_dir(self.done), log)

    def phase_dir(self, phase: int) -> Path:
        return self.root / f"phase-{phase}"

    @property
    def resume_step(self) -> Optional[int]:
        """The whole run's step to resume from (None: nothing to resume)."""
        if self.after is None and self.current is None:
            return None
        offset = saved_step(self.after) if self.after is not None else 0
        return offset + (saved_step(self.current) if self.current is not None else 0)

    def offset(self) -> int:
        """Optimizer steps of the finished phases."""
        return saved_step(self.after) if self.after is not None else 0

    def restore(self, model=None) -> dict:
        """The state saved when the last finished phase ended ({} when none); loads `model`'s weights and the
        random generators as they were then (dropout in the next phase draws what it would have drawn)."""
        if self.after is None:
            return {}
        return load_checkpoint(self.after, model=model if model is not None else nn.Module())

    def resume_from(self, phase: int) -> Optional[Path]:
        """The checkpoint inside `phase` to continue from: only for the first unfinished phase."""
        return self.current if phase == self.done else None

    def finish(self, phase: int, step: int, state: dict, model=None) -> None:
        """Phase `phase` ended at whole-run step `step`: keep `state` (JSON and tensors) and `model`'s weights,
        then drop the finished phase's own checkpoints and the previous "after" checkpoint."""
        save_checkpoint(self.root / f"after-phase-{phase}", step, model=model if model is not None else nn.Module(), optimizer=None,
                        trainer_state=state, keep_last=1)
        shutil.rmtree(self.phase_dir(phase), ignore_errors=True)
        if phase > 0:
            shutil.rmtree(self.root / f"after-phase-{phase - 1}", ignore_errors=True)


def _index(path: Path) -> int:
    return int(re.search(r"(\d+)$", path.name).group(1))   # "after-phase-12" -> 12
