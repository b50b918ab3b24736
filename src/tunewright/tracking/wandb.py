"""Weights & Biases behind the tracker protocol, in offline mode (no account, no network).

The run is written under `<run_dir>/wandb/`; `wandb sync <that folder>` uploads it later from a
machine with a network. Metrics are `<split>/<key>` at the optimizer step, as in metrics.jsonl.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path


class WandbTracker:
    def __init__(self, run_dir: Path, resume_step: int | None = None):
        import wandb
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run_dir = Path(run_dir)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "tunewright"), name=self.run_dir.name,
                              group=self.run_dir.name, dir=str(self.run_dir), mode=os.environ["WANDB_MODE"], reinit="create_new",
                              settings=wandb.Settings(console="off", x_disable_stats=True))
        self.run.define_metric("*", step_metric="step")
        (self.run_dir / "wandb.json").write_text(json.dumps({"project": self.run.project, "run_id": self.run.id,
                                                             "mode": os.environ["WANDB_MODE"]}))

    def log_params(self, params: dict) -> None:
        self.run.config.update({k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                                for k, v in params.items()}, allow_val_change=True)

    def log_metrics(self, row: dict) -> None:
        split = row.get("split", "train")
        data = {f"{split}/{k}": v for k, v in row.items() if k not in ("step", "split", "epoch")
                and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if data:
            self.run.log({**data, "step": int(row.get("step", 0))})

    def log_summary(self, summary: dict) -> None:
        for split in ("val", "test"):
            for k, v in (summary.get(split) or {}).items():
                if isinstance(v, (int, float)):
                    self.run.summary[f"final_{split}/{k}"] = v

    def log_artifact(self, path) -> None:
        import wandb
        path = Path(path)
        if not path.exists():
            return
        art = wandb.Artifact(name=f"{self.run_dir.name}-{path.stem}", type="model" if path.is_dir() else "report")
        (art.add_dir if path.is_dir() else art.add_file)(str(path))
        self.run.log_artifact(art)

    def close(self) -> None:
        self.run.finish()


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
                     reinit="create_new", config={"tunewright.run_id": meta["run_id"]},
                     settings=wandb.Settings(console="off", x_disable_stats=True))
    art = wandb.Artifact(name=f"{run_dir.name}-report", type="report")
    art.add_file(str(report))
    run.log_artifact(art)
    run.finish()
