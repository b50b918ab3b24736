"""What every run folder's logging shares, `tunewright train` and the drivers alike (tracking/phases.py):

    trackers, callbacks = logging_callbacks(cfg, run_dir)     # metrics.jsonl + `tracking:`, config logged
    fit(..., callbacks=[*callbacks, ...])
    finish(trackers, run_dir, summary, artifacts=[model_dir])  # summary.json, artifacts, trackers closed

A run that raised ends with `finish(trackers, run_dir, status=exit_status(exc), callbacks=callbacks)`:
each tracker records it as killed or failed, and the progress bar ends its line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from ..config import to_dict
from ..config.secrets import redact
from .base import build_trackers, flatten
from .base import exit_status  # noqa: F401  (re-exported for the run drivers)


def logging_callbacks(cfg, run_dir: Path, resume_step: int | None = None) -> tuple[list, list]:
    """(trackers, callbacks) that log a run: metrics.jsonl always, plus the `tracking:` trackers, which
    have been given the config; the callbacks send `fit()`'s rows to them and show progress.
    Close the trackers at the end (`finish`)."""
    from ..training.callbacks import Progress, TrackerLogger
    from ..training.grad_norms import GradNormLogger  # before TrackerLogger: it adds grad_norm/<group> to rows

    trackers = build_trackers(cfg.tracking, run_dir, resume_step)
    for t in trackers:
        t.log_params(flatten(redact(to_dict(cfg))))   # literal secrets never reach a tracker
    return trackers, [GradNormLogger(), TrackerLogger(trackers), Progress(cfg.train.progress)]


def finish(trackers: Sequence, run_dir: Path, summary: Optional[dict] = None, artifacts: Sequence = (),
           status: str = "finished", callbacks: Sequence = ()) -> None:
    """Write summary.json (when given), hand `artifacts` (e.g. the saved model) and summary.json to the
    trackers, close them with `status` (tracking/base.py STATUSES). Without a summary (the run failed or
    was killed) nothing is written or handed over. `callbacks` with a `close()` (the progress bar) are
    closed first: `fit()` did not reach `on_fit_end`."""
    for cb in callbacks:
        if hasattr(cb, "close"):
            cb.close()
    if summary is not None:
        (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    for t in trackers:
        if summary is not None:
            if hasattr(t, "log_summary"):
                t.log_summary(summary)
            for path in [*artifacts, Path(run_dir) / "summary.json"]:
                t.log_artifact(path)
        t.close(status)
