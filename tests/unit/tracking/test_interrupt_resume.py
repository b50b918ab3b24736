"""How a run ended, and a resumed run, as each tracker's own client reads them back: Ctrl-C is KILLED in
MLflow and exit code 130 (failed) in W&B, an error FAILED and 1; a run killed at step 20 and resumed from
its step-16 checkpoint is one MLflow run, one W&B run and one TensorBoard curve, each step once."""
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("wandb")

REPO = Path(__file__).resolve().parents[3]


class RaiseAt:
    def __init__(self, step: int, exc: BaseException):
        self.step, self.exc = step, exc

    def on_step_end(self, ctx):
        if ctx.state.step == self.step:
            raise self.exc


def _overrides(tmp_path, *extra):
    return [f"output_dir={tmp_path}", "train.progress=none", "tracking=[mlflow,wandb,tensorboard]", *extra]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))   # where W&B would stage copies


def _mlflow(run_dir):
    from mlflow import MlflowClient
    meta = json.loads((run_dir / "mlflow.json").read_text())
    return MlflowClient(meta["tracking_uri"]), meta["run_id"]


def _wandb_runs(run_dir):
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_an_error_is_failed(tmp_path, offline, read_wandb):
    from tunewright import train
    with pytest.raises(RuntimeError):
        train(REPO / "configs" / "tiny.yaml", _overrides(tmp_path, "train.epochs=1"),
              callbacks=[RaiseAt(2, RuntimeError("boom"))])
    run_dir = tmp_path / "tiny"
    client, run_id = _mlflow(run_dir)
    assert client.get_run(run_id).info.status == "FAILED"
    (wb,) = _wandb_runs(run_dir)
    assert read_wandb(wb)["exit_code"] == 1


def test_killed_then_resumed_is_one_run_in_each_tracker(tmp_path, offline, read_wandb):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tunewright import train
    cfg = REPO / "configs" / "tiny.yaml"
    with pytest.raises(KeyboardInterrupt):                  # killed at step 20; the last checkpoint is step 16
        train(cfg, _overrides(tmp_path), callbacks=[RaiseAt(20, KeyboardInterrupt())])
    run_dir = tmp_path / "tiny"
    client, run_id = _mlflow(run_dir)
    assert client.get_run(run_id).info.status == "KILLED"
    (wb,) = _wandb_runs(run_dir)
    killed = read_wandb(wb)
    assert killed["exit_code"] == 130                      # W&B shows a non-zero exit code as failed
    assert max(h["step"] for h in killed["history"]) == 20

    res = train(cfg, _overrides(tmp_path), resume=True)
    # the recipe states what it reaches (configs/tiny.yaml's header), killed and resumed or not
    claim = re.search(r"Reaches test accuracy ([0-9.]+)", cfg.read_text()).group(1)
    assert f"{res.test['accuracy']:.4f}" == claim
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    loss = [(r["step"], r["loss"]) for r in rows if r["split"] == "train"]
    steps = [s for s, _ in loss]
    assert steps == list(range(2, 65, 2))                  # metrics.jsonl: each step once (2 .. 64)

    # MLflow: the same run, reopened; each step once, the numbers of metrics.jsonl; one run in the store
    assert _mlflow(run_dir)[1] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "train/loss"))
    assert [h[0] for h in history] == steps
    assert [h[1] for h in history] == pytest.approx([v for _, v in loss], rel=1e-6)
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert run.data.metrics["final_test/accuracy"] == pytest.approx(res.test["accuracy"])

    # W&B: one offline run, with the same id, each step once, finished
    (wb,) = _wandb_runs(run_dir)
    resumed = read_wandb(wb)
    assert resumed["run_id"] == killed["run_id"] and resumed["exit_code"] == 0
    wb_loss = [(h["step"], h["train/loss"]) for h in resumed["history"] if "train/loss" in h]
    assert [s for s, _ in wb_loss] == steps
    assert [v for _, v in wb_loss] == pytest.approx([v for _, v in loss], rel=1e-6)
    # its artifacts refer to the run folder's files: nothing staged in W&B's data folder
    paths = [p for ps in resumed["artifacts"].values() for p in ps]
    assert paths and all(Path(p).resolve().is_relative_to(run_dir.resolve()) for p in paths), paths
    assert not [p for p in (tmp_path / "wandb-data").rglob("*") if p.is_file()]

    # TensorBoard, through its own reader: the resumed writer purged what followed the checkpoint
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tb_loss = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert [s for s, _ in tb_loss] == steps
    assert [v for _, v in tb_loss] == pytest.approx([v for _, v in loss], rel=1e-6)
    final = {t for t in acc.Tags()["scalars"] if t.startswith("final_")}
    assert {"final_val/accuracy", "final_test/accuracy"} <= final
    assert acc.Scalars("final_test/accuracy")[0].value == pytest.approx(res.test["accuracy"])
    assert not (run_dir / "tensorboard" / "artifacts").exists()   # the model stays in model/, once


def test_exit_status_of_each_ending():
    """Ctrl-C is killed, an error failed, a trial pruned by tune (stopped on purpose) killed."""
    from types import SimpleNamespace

    from tunewright.tracking import exit_status
    from tunewright.tune import PruneOnEvaluate

    class Trial:
        def report(self, value, step):
            pass

        def should_prune(self):
            return True

    with pytest.raises(Exception) as pruned:
        PruneOnEvaluate(Trial(), "accuracy").on_evaluate(SimpleNamespace(), {"val": {"accuracy": 0.5}})
    assert [exit_status(None), exit_status(KeyboardInterrupt()), exit_status(RuntimeError()),
            exit_status(pruned.value)] == ["finished", "killed", "failed", "killed"]


def test_an_error_after_fit_is_failed(tmp_path, offline, monkeypatch):
    """The final evaluation and summary run after fit(): an error there closes the trackers as FAILED too."""
    import tunewright.run as run
    from tunewright import train

    def broken(device):
        raise RuntimeError("summary failed")
    monkeypatch.setattr(run, "describe_machine", broken)
    with pytest.raises(RuntimeError, match="summary failed"):
        train(REPO / "configs" / "tiny.yaml", _overrides(tmp_path, "train.epochs=1", "tracking=[mlflow]"))
    client, run_id = _mlflow(tmp_path / "tiny")
    assert client.get_run(run_id).info.status == "FAILED"


def test_sigterm_is_killed_like_ctrl_c(tmp_path, offline):
    """SIGTERM (a scheduler's kill) raises Terminated in the main thread: MLflow says KILLED, exit code 143."""
    import os
    import signal

    from tunewright import train
    from tunewright.errors import Terminated, raise_on_sigterm

    class SigtermAt:
        def on_step_end(self, ctx):
            if ctx.state.step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    old = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert raise_on_sigterm()
        assert not raise_on_sigterm()                 # a handler is there now: left alone
        with pytest.raises(Terminated) as ended:
            train(REPO / "configs" / "tiny.yaml", _overrides(tmp_path, "train.epochs=1", "tracking=[mlflow]"),
                  callbacks=[SigtermAt()])
    finally:
        signal.signal(signal.SIGTERM, old)
    assert ended.value.exit_code == 143
    client, run_id = _mlflow(tmp_path / "tiny")
    assert client.get_run(run_id).info.status == "KILLED"
