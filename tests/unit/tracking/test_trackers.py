"""After a run, MLflow's store (queried through mlflow's own client) holds the metrics.jsonl numbers;
TensorBoard's event file holds them too; W&B wrote an offline run. Each tracker holds the saved model
and, once `tunewright report` ran, the report. Uses configs/tiny.yaml for 2 epochs."""
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("wandb")

REPO = Path(__file__).resolve().parents[3]


def test_mlflow_store_holds_the_metrics_jsonl_numbers(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from tunewright import train
    from tunewright.tracking.mlflow import metric_name

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    res = train(REPO / "configs" / "tiny.yaml", [f"output_dir={tmp_path}", "train.epochs=2", "train.progress=none",
                                                 "tracking=[mlflow,wandb,tensorboard]"])
    meta = json.loads((res.run_dir / "mlflow.json").read_text())
    assert meta["tracking_uri"].startswith("sqlite:///")
    client = MlflowClient(meta["tracking_uri"])
    run = client.get_run(meta["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2"

    rows = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    expected = {}
    for r in rows:
        for k, v in r.items():
            if k not in ("step", "split", "epoch") and isinstance(v, (int, float)) and math.isfinite(v):
                expected.setdefault(metric_name(r["split"], k), []).append((r["step"], v))
    assert "train/loss" in expected and "val/accuracy" in expected
    assert any(k.startswith("train/grad_norm/") for k in expected)       # per layer-group gradient norms
    for name, points in expected.items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(meta["run_id"], name))
        points = sorted(points)
        assert [h[0] for h in history] == [p[0] for p in points], name
        assert [h[1] for h in history] == pytest.approx([p[1] for p in points], rel=1e-9), name
    assert client.get_run(meta["run_id"]).data.metrics["final_test/accuracy"] == pytest.approx(res.test["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(meta["run_id"])}
    assert {"model", "summary.json"} <= artifacts
    assert list((res.run_dir / "wandb").glob("offline-run-*/run-*.wandb"))     # W&B's offline log

    # TensorBoard, read back through tensorboard's own reader: the same scalars, and the artifacts
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(res.run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    for name in ("train/loss", "val/accuracy"):
        got = sorted((e.step, e.value) for e in acc.Scalars(name))
        assert [g[0] for g in got] == [p[0] for p in sorted(expected[name])], name
        assert [g[1] for g in got] == pytest.approx([p[1] for p in sorted(expected[name])], rel=1e-6), name
    assert {"final_val/accuracy", "final_test/accuracy"} <= set(acc.Tags()["scalars"])
    assert acc.Scalars("final_test/accuracy")[0].value == pytest.approx(res.test["accuracy"])

    def tb_text(tag):
        return acc.Tensors(tag)[0].tensor_proto.string_val[0].decode()
    # artifacts are listed with their paths in the run folder, not copied a second time
    assert not (res.run_dir / "tensorboard" / "artifacts").exists()
    listing = tb_text("artifacts/model/text_summary")
    assert all(str(f.relative_to(res.run_dir)) in listing for f in (res.run_dir / "model").rglob("*") if f.is_file())
    assert "summary.json" in tb_text("artifacts/summary.json/text_summary")

    # the report, written after the run, reaches all three
    from tunewright.report import write_report
    n_wandb = len(list((res.run_dir / "wandb").glob("offline-run-*")))
    report = write_report(res.run_dir, analyze=False, baselines=False)
    assert "report.html" in {a.path for a in client.list_artifacts(meta["run_id"])}
    acc = EventAccumulator(str(res.run_dir / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    assert tb_text("artifacts/report.html/text_summary").endswith(f"report.html ({report.stat().st_size:,} bytes)")
    runs = sorted((res.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == n_wandb + 1                                          # the report's own offline run
    assert list(runs[-1].glob("run-*.wandb"))


def test_compare_variants_are_child_runs_of_the_comparison(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from tunewright.tracking.mlflow import PARENT_ENV, MlflowTracker, start_parent_run

    compare_dir = tmp_path / "cmp"
    (compare_dir / "lora").mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # restored after the test
    parent = start_parent_run(None, compare_dir)
    monkeypatch.setenv(PARENT_ENV, parent.run_id)
    child = MlflowTracker(compare_dir / "lora")
    child.log_metrics({"step": 1, "split": "val", "accuracy": 0.5})
    child.close()
    board = compare_dir / "leaderboard.csv"
    board.write_text("variant,test_accuracy\nlora,0.5\n")
    parent.finish([{"variant": "lora", "test_accuracy": 0.5}], board)
    client = MlflowClient(parent.uri)
    assert client.get_run(child.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
    assert client.get_run(parent.run_id).data.metrics["lora/test_accuracy"] == 0.5
    assert "leaderboard.csv" in {a.path for a in client.list_artifacts(parent.run_id)}


def test_a_comparisons_store_is_in_its_folder_as_the_docs_say(tmp_path, monkeypatch):
    """`<output_dir>/<run_name>-compare/mlflow.db`: the folder that holds the variants' run folders."""
    from tunewright.tracking.mlflow import MlflowTracker, start_parent_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset")      # recorded, so that teardown removes what the run sets
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    compare_dir = tmp_path / "runs" / "r8-compare"
    (compare_dir / "lora").mkdir(parents=True)
    parent = start_parent_run(None, compare_dir)
    child = MlflowTracker(compare_dir / "lora")
    child.close()
    store = f"sqlite:///{(compare_dir / 'mlflow.db').resolve()}"
    assert parent.uri == child.uri == store and (compare_dir / "mlflow.db").is_file()
    assert not (tmp_path / "runs" / "mlflow.db").exists()
    assert "`<output_dir>/<run_name>-compare/mlflow.db` for a comparison" in (REPO / "docs" / "choosing.md").read_text()
