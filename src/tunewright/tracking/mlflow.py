"""MLflow behind the tracker protocol, through mlflow's own `MlflowClient`.

The store is a local SQLite database by default (`sqlite:///<output_dir>/mlflow.db`): a real
database, queryable with `mlflow ui --backend-store-uri ...`, and no server to run. Set
`MLFLOW_TRACKING_URI` to use another store. A metric is named `<split>/<key>` and logged at the
optimizer step, the same numbers as metrics.jsonl. `tunewright compare` opens a parent run; each
variant's process finds its id in `TUNEWRIGHT_MLFLOW_PARENT_RUN_ID` and becomes a child run.

A run ends FINISHED, KILLED (Ctrl-C) or FAILED (an error). `--resume` reopens the same MLflow run (its
id is in `<run_dir>/mlflow.json`). MLflow's client cannot delete a logged point, so the steps the
interrupted run logged after its checkpoint are kept, and the resumed run does not log them again: each
step appears once. Resume is exact on a CPU (training/loop.py), so those are the numbers the resumed run
computes too (all but throughput); where resume is not exact (a GPU's kernels), metrics.jsonl holds
the resumed run's numbers for those steps and MLflow the interrupted run's.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

from ..config.secrets import REDACTED, redact

EXPERIMENT = "tunewright"
RUN_STATUS = {"finished": "FINISHED", "killed": "KILLED", "failed": "FAILED"}   # tracking/base.py STATUSES
PARENT_ENV = "TUNEWRIGHT_MLFLOW_PARENT_RUN_ID"


def tracking_uri(output_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


def metric_name(split: str, key: str) -> str:
    """MLflow allows letters, digits, `_ - . / ` and spaces in names; anything else becomes `_`."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", f"{split}/{key}")


def _client(output_dir: Path):
    from mlflow import MlflowClient
    uri = tracking_uri(output_dir)
    client = MlflowClient(tracking_uri=uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        artifacts = (Path(output_dir).resolve() / "mlflow-artifacts").as_uri()
        exp_id = client.create_experiment(name, artifact_location=artifacts)
    else:
        exp_id = exp.experiment_id
    return client, exp_id, uri


class MlflowTracker:
    def __init__(self, run_dir: Path, resume_step: int | None = None):
        from mlflow.entities import Metric, Param  # noqa: F401  (fail here, not mid-run, when absent)
        run_dir = Path(run_dir)
        self.client, exp_id, self.uri = _client(run_dir.parent)
        self.logged: dict[str, set[int]] = {}   # metric -> the steps after the checkpoint it has already
        self.params: dict[str, str] = {}                # params the reopened run holds (MLflow cannot change them)
        self.run_id = self._reopen(run_dir, resume_step) if resume_step is not None else None
        if self.run_id is None:
            tags = {"tunewright.run_dir": str(run_dir.resolve())}
            parent = os.environ.get(PARENT_ENV)
            if parent:
                tags["mlflow.parentRunId"] = parent
            self.run_id = self.client.create_run(exp_id, run_name=run_dir.name, tags=tags).info.run_id
        # A URI with credentials (https://user:password@host) is written without them (config/secrets.py).
        (run_dir / "mlflow.json").write_text(json.dumps(redact({"tracking_uri": self.uri, "run_id": self.run_id})))

    def _reopen(self, run_dir: Path, resume_step: int) -> str | None:
        """The interrupted run's id, set RUNNING again, with what it logged after `resume_step`; None
        when there is none in this store (no mlflow.json, another store, or a deleted run)."""
        from mlflow.exceptions import MlflowException
        info = run_dir / "mlflow.json"
        if not info.exists():
            return None
        run_id = json.loads(info.read_text())["run_id"]
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return None
        if run.info.lifecycle_stage != "active":
            return None
        for key in run.data.metrics:
            self.logged[key] = {m.step for m in self.client.get_metric_history(run_id, key) if m.step > resume_step}
        self.params = dict(run.data.params)
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param
        ps = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in self.params]
        for i in range(0, len(ps), 100):          # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=ps[i:i + 100])

    def log_metrics(self, row: dict) -> None:
        from mlflow.entities import Metric
        split, step, ts = row.get("split", "train"), int(row.get("step", 0)), int(time.time() * 1000)
        ms = [Metric(metric_name(split, k), float(v), ts, step) for k, v in row.items()
              if k not in ("step", "split", "epoch") and isinstance(v, (int, float)) and not isinstance(v, bool)
              and math.isfinite(v)]
        ms = [m for m in ms if m.step not in self.logged.get(m.key, ())]   # the interrupted run logged it
        if ms:
            self.client.log_batch(self.run_id, metrics=ms)

    def log_summary(self, summary: dict) -> None:
        for split in ("val", "test"):
            self.log_metrics({"step": summary.get("steps", 0), "split": f"final_{split}", **(summary.get(split) or {})})

    def log_artifact(self, path) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
        elif path.exists():
            self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str = "finished") -> None:
        self.client.set_terminated(self.run_id, status=RUN_STATUS[status])


class ParentRun:
    """The parent run of a comparison: its children are the variants; it holds the leaderboard."""

    def __init__(self, output_dir: Path, name: str):
        self.client, exp_id, self.uri = _client(output_dir)
        self.run_id = self.client.create_run(exp_id, run_name=name, tags={"tunewright.kind": "compare"}).info.run_id

    def finish(self, rows: list[dict], leaderboard: Path) -> None:
        from mlflow.entities import Metric
        ts = int(time.time() * 1000)
        ms = [Metric(metric_name(r["variant"], k), float(v), ts, 0) for r in rows for k, v in r.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        for i in range(0, len(ms), 500):
            self.client.log_batch(self.run_id, metrics=ms[i:i + 500])
        self.client.log_artifact(self.run_id, str(leaderboard))
        report = Path(leaderboard).parent / "report.html"
        if report.exists():
            self.client.log_artifact(self.run_id, str(report))
        self.client.set_terminated(self.run_id)


def start_parent_run(cfg, compare_dir: Path) -> ParentRun:
    """Children (the variants' processes) must reach the same store: export its URI for them."""
    os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri(Path(compare_dir)))
    return ParentRun(Path(compare_dir), Path(compare_dir).name)


def log_report(run_dir: Path, report: Path) -> None:
    """Attach a report written after the run ended to the run's MLflow record (if it has one)."""
    info = Path(run_dir) / "mlflow.json"
    if info.exists():
        from mlflow import MlflowClient
        meta = json.loads(info.read_text())
        uri = meta["tracking_uri"]
        if REDACTED in uri:            # saved without its credentials: they come from the environment again
            uri = os.environ.get("MLFLOW_TRACKING_URI", uri)
        MlflowClient(tracking_uri=uri).log_artifact(meta["run_id"], str(report))
