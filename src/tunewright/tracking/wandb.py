"""Weights & Biases behind the tracker protocol, in offline mode (no account, no network).

The run is written under `<run_dir>/wandb/`; `wandb sync <that folder>` uploads it later from a
machine with a network. Metrics are `<split>/<key>` at the optimizer step, as in metrics.jsonl.

How a run ends is its exit code: 0 finished, 130 killed (Ctrl-C), 1 failed; W&B shows a run with a
non-zero exit code as failed.

`--resume` continues the same W&B run (the id in `<run_dir>/wandb.json`). An offline run cannot be
reopened, and W&B cannot drop logged steps (its "rewind" is a server-side preview), so the record is
rebuilt: a new offline run with the same id gets the metrics.jsonl rows up to the checkpoint, and the
interrupted run's folder is removed; what follows is logged as usual, each step once. (Sync a run
after it finished: an interrupted run synced before its resume would be a second copy on the server.)
With `WANDB_MODE=online` the run is resumed (`resume="allow"`), and the steps it logged after the
checkpoint are not logged again.

Artifacts (the model, summary.json, the report) are added by reference to the files in the run folder
(`policy="immutable"`): W&B's default copies each file into `~/.local/share/wandb/artifacts/staging/`,
a copy of every model outside the run folder that nothing cleans up.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

EXIT_CODE = {"finished": 0, "killed": 130, "failed": 1}   # tracking/base.py STATUSES


def _settings():
    import wandb
    return wandb.Settings(console="off", x_disable_stats=True)


class WandbTracker:
    def __init__(self, run_dir: Path, resume_step: int | None = None):
        import wandb
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run_dir = Path(run_dir)
        mode = os.environ["WANDB_MODE"]
        info = self.run_dir / "wandb.json"
        run_id = json.loads(info.read_text())["run_id"] if resume_step is not None and info.exists() else None
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "tunewright"), name=self.run_dir.name,
                              group=self.run_dir.name, dir=str(self.run_dir), mode=mode, reinit="create_new",
                              id=run_id, resume="allow" if run_id and mode == "online" else None,
                              settings=_settings())
        self.run.define_metric("*", step_metric="step")
        self.skip_to = -1          # steps up to this one are in the record already (an online resume)
        if run_id and mode == "online":
            self.skip_to = int(self.run.summary.get("step", -1))
        elif run_id:
            self._rebuild(run_id, resume_step)
        info.write_text(json.dumps({"project": self.run.project, "run_id": self.run.id, "mode": mode}))

    def _rebuild(self, run_id: str, resume_step: int) -> None:
        """Offline resume: the history up to the checkpoint into this new run, the interrupted run's folder away."""
        from .base import rows_up_to
        for row in rows_up_to(self.run_dir / "metrics.jsonl", resume_step):
            self.log_metrics(row)
        here = Path(self.run.dir).resolve().parent            # <run_dir>/wandb/offline-run-<time>-<id>
        for old in (self.run_dir / "wandb").glob(f"offline-run-*-{run_id}"):
            if old.resolve() != here:
                shutil.rmtree(old)

    def log_params(self, params: dict) -> None:
        self.run.config.update({k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                                for k, v in params.items()}, allow_val_change=True)

    def log_metrics(self, row: dict) -> None:
        split, step = row.get("split", "train"), int(row.get("step", 0))
        data = {f"{split}/{k}": v for k, v in row.items() if k not in ("step", "split", "epoch")
                and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if data and step > self.skip_to:
            self.run.log({**data, "step": step})

    def log_summary(self, summary: dict) -> None:
        for split in ("val", "test"):
            for k, v in (summary.get(split) or {}).items():
                if isinstance(v, (int, float)):
                    self.run.summary[f"final_{split}/{k}"] = v

    def log_artifact(self, path) -> None:
        path = Path(path)
        if path.exists():
            kind = "model" if path.is_dir() else "report"
            self.run.log_artifact(_artifact(f"{self.run_dir.name}-{path.stem}", kind, path))

    def close(self, status: str = "finished") -> None:
        self.run.finish(exit_code=EXIT_CODE[status])


def _artifact(name: str, kind: str, path: Path):
    """An artifact that refers to `path` where it lies: no staging copy outside the run folder, and
    (`skip_cache`) no second copy in W&B's cache when `wandb sync` uploads it."""
    import wandb
    art = wandb.Artifact(name=name, type=kind)
    if path.is_dir():
        art.add_dir(str(path), policy="immutable", skip_cache=True)
    else:
        art.add_file(str(path), policy="immutable", skip_cache=True)
    return art


def log_report(run_dir: Path, report: Path) -> None:
    """Attach a report written after the run ended. A finished offline run cannot be reopened, so the
    report goes into a small run of its own in the same group (`job_type="report"`), as an artifact
    named `<run>-report`; `wandb sync` uploads both, and the W&B UI shows them side by side."""
    import wandb
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "wandb.json").read_text())
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(project=meta["project"], name=f"{run_dir.name}-report", group=run_dir.name,
                     job_type="report", dir=str(run_dir), mode=os.environ.get("WANDB_MODE", meta.get("mode", "offline")),
                     reinit="create_new", config={"tunewright.run_id": meta["run_id"]}, settings=_settings())
    run.log_artifact(_artifact(f"{run_dir.name}-report", "report", Path(report)))
    run.finish()
