"""The documented `mlflow ui` serves its page and our runs for a store tunewright wrote: started on
127.0.0.1 at a free port, waited for within a bound, and always killed with its worker processes."""
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("mlflow")


def ui_installed() -> bool:
    import mlflow
    page = Path(mlflow.__file__).parent / "server" / "js" / "build" / "index.html"
    return importlib.util.find_spec("flask") is not None and page.is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, data: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode()


@pytest.mark.slow
def test_mlflow_ui_serves_a_tunewright_store(tmp_path, monkeypatch):
    from tunewright.tracking.mlflow import EXPERIMENT, MlflowTracker

    # `make venv` installs it (the tracking extra, and the `mlflow` wheel of the mlflow-skinny version)
    assert ui_installed(), "the MLflow UI is not installed: docs/choosing.md, 'Browsing the MLflow store'"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    tracker = MlflowTracker(run_dir)                        # the store as `tunewright train` writes it
    tracker.log_metrics({"step": 2, "split": "train", "loss": 0.5})
    tracker.close()
    port, log = free_port(), (tmp_path / "ui.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracker.uri,
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)          # its own process group: its workers die with it
    try:
        deadline, page = time.monotonic() + 300, None       # a busy 2-core machine took about 45 s to start it
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = get(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                time.sleep(2)
        assert page is not None, (tmp_path / "ui.log").read_text()[-3000:]
        status, html = page
        assert status == 200 and "<title>MLflow" in html
        # what the UI's pages ask the server for: the runs of our experiment (REST) and a run (GraphQL)
        exp_id = tracker.client.get_experiment_by_name(EXPERIMENT).experiment_id
        status, body = get(f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/runs/search",
                           {"experiment_ids": [exp_id], "max_results": 10})
        runs = json.loads(body)["runs"]
        assert [r["info"]["run_name"] for r in runs] == ["tiny"]
        assert runs[0]["data"]["metrics"][0]["key"] == "train/loss"
        query = 'query { mlflowGetRun(input: {runId: "%s"}) { run { info { runName status } } } }' % tracker.run_id
        status, body = get(f"http://127.0.0.1:{port}/graphql", {"query": query})
        assert json.loads(body)["data"]["mlflowGetRun"]["run"]["info"] == {"runName": "tiny", "status": "FINISHED"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
