"""What every run folder's logging shares, `tunewright train` and the drivers alike (tracking/phases.py):

    trackers, callbacks = logging_callbacks(cfg, run_dir)     # metrics.jsonl + `tracking:`, config logged
    fit(..., callbacks=[*callbacks, ...])
    finish(trackers, run_dir, summary, artifacts=[model_dir])  # summary.json, artifacts, trackers closed
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from ..config import to_dict
from .base import build_trackers, flatten


def logging_callbacks(cfg, run_dir: Path, resume_step: int | None = None) -> tuple[list, list]:
    """(trackers, callbacks) that log a run: metrics.jsonl always, plus the `tracking:` trackers, which
    have been given the config; the callbacks send `fit()`'s rows to them and show progress.
    Close the trackers at the end (`finish`)."""
    from ..training.callbacks import Progress, TrackerLogger
    from ..training.grad_norms import GradNormLogger  # before TrackerLogger: it adds grad_norm/<group> to rows

    trackers = build_trackers(cfg.tracking, run_dir, resume_step)
    for t in trackers:
        t.log_params(flatten(to_dict(cfg)))
    return trackers, [GradNormLogger(), TrackerLogger(trackers), Progress(cfg.train.progress)]


def finish(trackers: Sequence, run_dir: Path, summary: Optional[dict] = None, artifacts: Sequence = ()) -> None:
    """Write summary.json (when given), hand `artifacts` (e.g. the saved model) and summary.json to the
    trackers, close them. Without a summary (the run failed) nothing is written or handed over."""
    if summary is not None:
        (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    for t in trackers:
        if summary is not None:
            if hasattr(t, "log_summary"):
                t.log_summary(summary)
            for path in [*artifacts, Path(run_dir) / "summary.json"]:
                t.log_artifact(path)
        t.close()
