"""Logging for drivers that call `fit()` several times (one task after another, single-task
baselines, a pre-training step): the same metrics.jsonl and `tracking:` trackers as `tunewright
train`, with each row tagged by its phase.

    log = PhasedLog(cfg, run_dir)                   # metrics.jsonl + cfg.tracking; the config logged
    fit_examples(model, data, cfg, callbacks=[*cbs, *log.callbacks("task 1")])
    log.log({"phase": "task 1", "R_row": [...]})    # a driver's own row (evaluation after a phase)
    log.close(summary)                              # summary.json as an artifact, trackers closed

Rows keep `fit()`'s keys; `step` counts optimizer steps over the whole run (so TensorBoard, MLflow
and W&B draw one curve), `phase_step` the step within the phase.
"""
from __future__ import annotations

import json
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
    def __init__(self, cfg, run_dir):
        from ..config import dump_yaml
        from ..run import logging_callbacks

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(dump_yaml(cfg))
        self.trackers, self._callbacks = logging_callbacks(cfg, self.run_dir)
        self.offset = 0

    def callbacks(self, phase: str) -> list:
        """The callbacks to add to one `fit()` call of `phase`."""
        return [_Phase(self, phase), *self._callbacks]

    def log(self, row: dict) -> None:
        row = {"step": self.offset, **row}
        for t in self.trackers:
            t.log_metrics(row)

    def close(self, summary: Optional[dict] = None, artifacts: Sequence = ()) -> None:
        """Write summary.json (when given), hand it and `artifacts` (e.g. saved weights) to the
        trackers, close them. Without a summary (the run failed) nothing is written or handed over."""
        if summary is not None:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        for t in self.trackers:
            if summary is not None:
                if hasattr(t, "log_summary"):
                    t.log_summary(summary)
                for path in [*artifacts, self.run_dir / "summary.json"]:
                    t.log_artifact(path)
            t.close()
