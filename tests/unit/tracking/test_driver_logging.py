"""The drivers (continual, multitask, meta) log like `tunewright train`: config.yaml, metrics.jsonl
rows of every `fit()` call tagged with their phase, the `tracking:` trackers, and summary.json."""
import json

import pytest
import torch

from tunewright.config.load import config_from_dict
from tunewright.tracking.phases import PhasedLog
from tunewright.data.examples import Examples


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _continual_tasks():
    g = torch.Generator().manual_seed(0)
    tasks = []
    for t in range(2):
        x = torch.randn(32, 6, generator=g)
        y = (x[:, t] > 0).long() + 2 * t
        tasks.append((Examples(inputs=x[:24], labels=y[:24], task=torch.full((24,), t)),
                      Examples(inputs=x[24:], labels=y[24:], task=torch.full((8,), t))))
    return tasks, [[0, 1], [2, 3]], 4


def test_continual_run_writes_metrics_rows_per_task_and_tensorboard(tmp_path):
    from tunewright.continual.driver import run_sequence
    cfg = config_from_dict({"model": {"name": "tunewright.zoo:mlp_trunk", "factory_kwargs": {"in_features": 6,
                                                                                              "hidden": 8}},
                            "train": {"epochs": 1, "batch_size": 8, "lr": 1e-2, "log_every_steps": 1,
                                      "progress": "none"},
                            "tracking": ["tensorboard"], "continual": {"method": "adapters"}})
    log = PhasedLog(cfg, tmp_path / "run")
    out = run_sequence(cfg, loaded=_continual_tasks(), log=log)
    log.close(out)
    run = tmp_path / "run"
    rows = _rows(run)
    train = [r for r in rows if r["split"] == "train"]
    assert [r["phase"] for r in train] == ["adapters task 0"] * 3 + ["adapters task 1"] * 3   # 24 / 8 steps each
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]                                 # one run-wide step
    assert [r["phase_step"] for r in train] == [1, 2, 3, 1, 2, 3]
    assert all(r["loss"] > 0 and "lr" in r for r in train)
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["after_task"] for r in evals] == [0, 1]
    assert [evals[1][f"acc/task{j}"] for j in range(2)] == pytest.approx(out["R"][1], abs=1e-4)
    assert (run / "config.yaml").is_file() and json.loads((run / "summary.json").read_text())["R"] == out["R"]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_multitask_run_writes_metrics_rows(tmp_path):
    from tunewright.multitask.driver import negative_transfer
    g = torch.Generator().manual_seed(0)
    data = []
    for t in range(2):
        x = torch.randn(24, 8, generator=g)
        y = (x[:, t] > 0).long()
        data.append((f"t{t}", Examples(inputs=x[:16], labels=y[:16], task=torch.full((16,), t)),
                     Examples(inputs=x[16:], labels=y[16:], task=torch.full((8,), t)), 2))
    cfg = config_from_dict({"train": {"epochs": 1, "batch_size": 8, "lr": 1e-2, "log_every_steps": 1,
                                      "progress": "none"}})
    log = PhasedLog(cfg, tmp_path / "mt")
    negative_transfer(cfg, data, log)
    log.close()
    rows = _rows(tmp_path / "mt")
    phases = [r["phase"] for r in rows if r["split"] == "train"]
    assert phases == ["t0+t1"] * 4 + ["t0"] * 2 + ["t1"] * 2
    tests = [r for r in rows if r["split"] == "test"]
    assert [sorted(k for k in r if k.startswith("acc/")) for r in tests] == [["acc/t0", "acc/t1"], ["acc/t0"],
                                                                            ["acc/t1"]]


def test_meta_train_run_dir_has_metrics_weights_and_summary(tmp_path):
    from tunewright.meta.driver import meta_train
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(6)                       # 4 classes x 6 images
    x = torch.rand(len(y), 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1) * 0.1
    cfg = config_from_dict({"model": {"name": "tunewright.zoo:small_cnn",
                                      "factory_kwargs": {"width": 2, "image_size": 8, "feature_dim": 4}},
                            "train": {"lr": 1e-3, "log_every_steps": 1, "progress": "none"},
                            "meta": {"algorithm": "fomaml", "n_way": 2, "k_shot": 1, "q_queries": 2, "meta_batch": 2,
                                     "meta_iterations": 3, "test_episodes": 4, "test_inner_steps": 1}})
    from tunewright.meta.data import MetaData
    data = MetaData(x, y, [0, 1], [2, 3], ["a", "b", "c", "d"], "image")
    s = meta_train(cfg, tmp_path / "meta", data=data)
    assert s["test_classes"] == ["c", "d"]
    rows = _rows(tmp_path / "meta")
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3]
    assert rows[-1]["split"] == "meta_test" and rows[-1]["acc"] == pytest.approx(s["test_acc"])
    for f in ("config.yaml", "summary.json", "meta_model.safetensors"):
        assert (tmp_path / "meta" / f).is_file()
