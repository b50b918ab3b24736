"""MLflow behind the tracker protocol, through mlflow's own `MlflowClient`.

The store is a local SQLite database by default (`sqlite:///<output_dir>/mlflow.db`): a real
database, queryable with `mlflow ui --backend-store-uri ...`, and no server to run. Set
`MLFLOW_TRACKING_URI` to use another store. A metric is named `<split>/<key>` and logged at the
optimizer step, the same numbers as metrics.jsonl. `tunewright compare` opens a parent run; each
variant's process finds its id in `TUNEWRIGHT_MLFLOW_PARENT_RUN_ID` and becomes a child run.
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
    def __init__(self, run_dir: Path):
        from mlflow.entities import Metric, Param  # noqa: F401  (fail here, not mid-run, when absent)
        self.client, exp_id, self.uri = _client(Path(run_dir).parent)
        tags = {"tunewright.run_dir": str(Path(run_dir).resolve())}
        parent = os.environ.get(PARENT_ENV)
        if parent:
            tags["mlflow.parentRunId"] = parent
        self.run_id = self.client.create_run(exp_id, run_name=Path(run_dir).name, tags=tags).info.run_id
        # A URI with credentials (https://user:password@host) is written without them (config/secrets.py).
        (Path(run_dir) / "mlflow.json").write_text(json.dumps(redact({"tracking_uri": self.uri, "run_id": self.run_id})))

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param
        ps = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(ps), 100):          # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=ps[i:i + 100])

    def log_metrics(self, row: dict) -> None:
        from mlflow.entities import Metric
        split, step, ts = row.get("split", "train"), int(row.get("step", 0)), int(time.time() * 1000)
        ms = [Metric(metric_name(split, k), float(v), ts, step) for k, v in row.items()
              if k not in ("step", "split", "epoch") and isinstance(v, (int, float)) and not isinstance(v, bool)
              and math.isfinite(v)]
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

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


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
