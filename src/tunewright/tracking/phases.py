"""Logging for drivers that call `fit()` several times (one task after another, single-task
baselines, a pre-training step): the same metrics.jsonl and `tracking:` trackers as `tunewright
train`, with each row tagged by its phase.

    with PhasedLog(cfg, run_dir) as log:            # metrics.jsonl + cfg.tracking; the config logged
        fit_examples(model, data, cfg, callbacks=[*cbs, *log.callbacks("task 1")])
        log.log({"phase": "task 1", "R_row": [...]})  # a driver's own row (evaluation after a phase)
        log.close(summary)                            # summary.json as an artifact, trackers closed
                                                      # leaving the block unclosed (an error): trackers closed,
                                                      # the run recorded as failed (killed on Ctrl-C)

Rows keep `fit()`'s keys; `step` counts optimizer steps over the whole run (so TensorBoard, MLflow
and W&B draw one curve), `phase_step` the step within the phase.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence


class _Phase:
    """Tags `fit()`'s rows with the phase and offsets their step; must come before the TrackerLogger."""

    def __init__(self, log: "PhasedLog", name: str):
        self.log, self.name = log, name

    def on_log(self, ctx, row: dict) -> None:
        row["phase"], row["phase_step"] = self.name, row["step"]
        row["step"] = self.log.offset + row["step"]

    def on_fit_end(self, ctx) -> None:
        self.log.offset += ctx.state.step


class PhasedLog:
    """A context manager: leaving the block without `close(summary)` (an error) closes the trackers
    and writes no summary."""

    def __init__(self, cfg, run_dir=None, resume_step: Optional[int] = None):
        """`run_dir` defaults to the config's run folder, `<output_dir>/<run_name>`. `resume_step`: the
        run continues from a checkpoint of that (whole-run) step; rows logged after it are dropped, as
        `tunewright train --resume` does."""
        from ..config import dump_yaml
        from .run_log import logging_callbacks

        self.closed = False
        self.run_dir = Path(run_dir) if run_dir is not None else Path(cfg.output_dir) / cfg.run_name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(dump_yaml(cfg))
        self.trackers, self._callbacks = logging_callbacks(cfg, self.run_dir, resume_step)
        self.offset = 0

    def callbacks(self, phase: str) -> list:
        """The callbacks to add to one `fit()` call of `phase`."""
        return [_Phase(self, phase), *self._callbacks]

    def log(self, row: dict) -> None:
        row = {"step": self.offset, **row}
        for t in self.trackers:
            t.log_metrics(row)

    def close(self, summary: Optional[dict] = None, artifacts: Sequence = (), status: str = "finished") -> None:
        """Write summary.json (when given), hand it and `artifacts` (e.g. saved weights) to the
        trackers, close them with `status`. Without a summary (the run failed) nothing is written or
        handed over. Only the first call counts."""
        if self.closed:
            return
        self.closed = True
        from .run_log import finish
        finish(self.trackers, self.run_dir, summary, artifacts, status=status, callbacks=self._callbacks)

    def __enter__(self) -> "PhasedLog":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        from .base import exit_status
        # An error or Ctrl-C inside the block: the trackers record the run as failed or killed.
        self.close(status="finished" if exc is None else exit_status(exc))
