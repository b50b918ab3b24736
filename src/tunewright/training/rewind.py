"""Going back to a checkpoint in the middle of `fit()`: what `ctx.state.rewind_to` asks of the loop.

A callback that decides the run must continue from an earlier checkpoint (training/spike.py, after a
loss spike) sets `ctx.state.rewind_to` to that checkpoint's folder. The loop looks at it at the next
accumulation boundary, right after `on_before_optimizer_step`, when every callback of that event has
run and the step's gradients are not applied yet. It drops those gradients, calls `rewind(ctx)`, fires
`on_rewind(ctx)` and goes on from the restored position. `rewind` does what `--resume` does, inside
the running process:

- model, optimizer, scheduler and every RNG from the checkpoint (`load_checkpoint`);
- every callback's `state_dict()` from it (`ctx.callbacks.load_state_dict`);
- the loop's position: step, epoch, batch_in_epoch (and nonfinite_in_row). The epoch's batch order is
  a pure function of (seed, epoch), so the run replays the same batches with the same dropout masks.

Not rewound: best_metric / best_step / best_epoch (model/ still holds the best weights seen, and a
rewind does not undo them), samples_seen and train_seconds (work that was done), should_stop and
stop_reason (a callback may rewind and stop in one go).

Checkpoints newer than the one rewound to belong to the abandoned stretch of the run and are
deleted, so a `--resume` after a crash continues the rewound run, not the abandoned one.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import CheckpointError
from .checkpoint import list_checkpoints, load_checkpoint

POSITION = ("step", "epoch", "batch_in_epoch", "nonfinite_in_row")


def step_of(path) -> int:
    """The step a `step-000123` checkpoint folder was saved at."""
    return int(Path(path).name.removeprefix("step-"))


def rewind(ctx) -> Path:
    """Restore the run from the checkpoint folder `ctx.state.rewind_to` names (see the module docstring);
    clears the request and returns the folder. Raises CheckpointError, naming the file, if it does not load."""
    path, ctx.state.rewind_to = Path(ctx.state.rewind_to), None
    trainer_state = load_checkpoint(path, model=ctx.model, optimizer=ctx.optimizer, scheduler=ctx.scheduler)
    loop = trainer_state.get("loop") if isinstance(trainer_state, dict) else None
    callbacks = trainer_state.get("callbacks", {}) if isinstance(trainer_state, dict) else None
    if not isinstance(loop, dict) or not all(type(loop.get(k)) is int for k in POSITION) \
            or not isinstance(callbacks, dict):
        raise CheckpointError(f"{path / 'state.json'}: trainer_state holds no loop position "
                              f"({', '.join(POSITION)}) and callback states to go back to")
    ctx.callbacks.load_state_dict(callbacks)
    for key in POSITION:
        setattr(ctx.state, key, loop[key])
    for later in list_checkpoints(path.parent):
        if step_of(later) > step_of(path):
            shutil.rmtree(later, ignore_errors=True)
    return path
