"""One small tracker protocol. metrics.jsonl is always written; TensorBoard, MLflow and W&B plug in
behind the same four methods, each through its own library's client.

How a run ended reaches each tracker through `close(status)`: "finished", "killed" (Ctrl-C) or
"failed" (an error); `exit_status(exc)` tells which. A resumed run (`resume_step`, the step of the
checkpoint it starts from) continues the same record in every tracker, each step once.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Protocol


STATUSES = ("finished", "killed", "failed")


class Tracker(Protocol):
    def log_params(self, params: dict) -> None: ...
    def log_metrics(self, row: dict) -> None: ...
    def log_artifact(self, path: str | Path) -> None: ...
    def close(self, status: str = "finished") -> None: ...   # one of STATUSES


def exit_status(exc: BaseException | None) -> str:
    """How a run that raised `exc` ended, for `close(status)`: Ctrl-C (KeyboardInterrupt) is "killed", as
    is an exception that declares `tracker_status = "killed"` (a pruned Optuna trial, tune.py); any other
    exception is "failed"; no exception is "finished"."""
    if exc is None:
        return "finished"
    if isinstance(exc, KeyboardInterrupt):
        return "killed"
    declared = getattr(exc, "tracker_status", None)
    return declared if declared in STATUSES else "failed"


def rows_up_to(path: Path, step: int) -> list[dict]:
    """The metrics.jsonl rows at or before `step`: a resumed run's history up to its checkpoint."""
    if not Path(path).exists():
        return []
    rows = (json.loads(line) for line in Path(path).read_text().splitlines() if line.strip())
    return [r for r in rows if r.get("step", 0) <= step]


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf; keep the information as a string
    return v


class JsonlTracker:
    """Appends one JSON object per row to metrics.jsonl. On resume, rows past the resumed step are
    dropped first, so the file reads as one uninterrupted run."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None and self.path.exists():
            keep = rows_up_to(self.path, resume_step)
            self.path.write_text("".join(json.dumps(r) + "\n" for r in keep))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._f = self.path.open("a")

    def log_params(self, params: dict) -> None:
        pass  # config.yaml holds the parameters

    def log_metrics(self, row: dict) -> None:
        self._f.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")
        self._f.flush()

    def log_artifact(self, path) -> None:
        pass

    def close(self, status: str = "finished") -> None:
        self._f.close()


class TensorBoardTracker:
    """Scalars as `<split>/<metric>` at the optimizer step, via torch's SummaryWriter; the final numbers
    as `final_val/<metric>` and `final_test/<metric>` at the last step.

    On resume, the writer starts with `purge_step = resume_step + 1`: TensorBoard's readers then hide
    every event of the interrupted run after the checkpoint, so each step appears once.

    TensorBoard has no artifact store. The saved model (or adapter), summary.json and the report stay
    where the run wrote them, in the run folder; an artifact is recorded in the event file as text
    (`artifacts/<name>`: each file's path relative to the run folder, and its size), not copied."""

    def __init__(self, logdir: str | Path, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter
        self.logdir = Path(logdir)
        self.writer = SummaryWriter(log_dir=str(logdir),
                                    purge_step=None if resume_step is None else resume_step + 1)

    def log_params(self, params: dict) -> None:
        flat = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in params.items()}
        self.writer.add_text("config", "\n".join(f"{k}: {v}" for k, v in flat.items()))

    def log_metrics(self, row: dict) -> None:
        split, step = row.get("split", "train"), int(row.get("step", 0))
        for k, v in row.items():
            if k not in ("step", "split", "epoch") and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(f"{split}/{k}", v, step)
        self.writer.flush()

    def log_summary(self, summary: dict) -> None:
        for split in ("val", "test"):
            self.log_metrics({"step": summary.get("steps", 0), "split": f"final_{split}", **(summary.get(split) or {})})

    def log_artifact(self, path) -> None:
        path = Path(path)
        if not path.exists():
            return
        files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
        base = self.logdir.parent            # the run folder
        listing = "\n".join(f"{os.path.relpath(f, base)} ({f.stat().st_size:,} bytes)" for f in files)
        self.writer.add_text(f"artifacts/{path.name}", f"in the run folder, not copied:\n{listing}")
        self.writer.flush()

    def close(self, status: str = "finished") -> None:
        self.writer.close()


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def log_report(run_dir: str | Path, report: str | Path) -> list[str]:
    """Attach a report written after the run ended to each tracker record the run has (MLflow:
    `mlflow.json`; TensorBoard: `tensorboard/`; W&B: `wandb.json`). Returns the trackers reached."""
    run_dir, done = Path(run_dir), []
    if (run_dir / "mlflow.json").exists():
        from .mlflow import log_report as mlflow_report
        mlflow_report(run_dir, Path(report))
        done.append("mlflow")
    if (run_dir / "tensorboard").is_dir():
        tb = TensorBoardTracker(run_dir / "tensorboard")
        tb.log_artifact(report)
        tb.close()
        done.append("tensorboard")
    if (run_dir / "wandb.json").exists():
        from .wandb import log_report as wandb_report
        wandb_report(run_dir, Path(report))
        done.append("wandb")
    return done


def build_trackers(names: list[str], run_dir: Path, resume_step: int | None = None) -> list:
    trackers: list = [JsonlTracker(run_dir / "metrics.jsonl", resume_step)]
    for name in names:
        if name == "jsonl":
            continue
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(run_dir / "tensorboard", resume_step))
        elif name == "mlflow":
            from .mlflow import MlflowTracker
            trackers.append(MlflowTracker(run_dir, resume_step))
        elif name == "wandb":
            from .wandb import WandbTracker
            trackers.append(WandbTracker(run_dir, resume_step))
        else:
            raise NotImplementedError(f"tracking: {name!r} is not wired in yet")
    return trackers
