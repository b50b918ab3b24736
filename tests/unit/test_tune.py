"""Optuna search: the space parser, and median pruning stopping bad trials early on a seeded toy search."""
from types import SimpleNamespace

import pytest

optuna = pytest.importorskip("optuna")

from tunewright.errors import ConfigError  # noqa: E402
from tunewright.tune import PruneOnEvaluate, make_study, parse_space, suggest  # noqa: E402


def test_parse_space():
    s = parse_space({"train.lr": "loguniform(1e-5, 1e-2)", "lora.r": [4, 8, 16], "train.epochs": "int(1, 4)"})
    assert s["train.lr"] == ("float", 1e-5, 1e-2, True)
    assert s["lora.r"] == ("categorical", [4, 8, 16])
    assert s["train.epochs"] == ("int", 1, 4, False)
    with pytest.raises(ConfigError, match="search_space.train.lr"):
        parse_space({"train.lr": "normal(0, 1)"})
    with pytest.raises(ConfigError, match="lower bound"):
        parse_space({"train.lr": "uniform(1, 0)"})


def toy_fit(lr: float, callback, epochs: int = 6) -> float:
    """A stand-in for fit(): validation accuracy per epoch, best near lr = 1e-3, worse far from it."""
    import math
    quality = math.exp(-abs(math.log10(lr) + 3))            # 1 at 1e-3, ~0.05 at 1e-6
    ctx = SimpleNamespace(state=SimpleNamespace())
    acc = 0.0
    for epoch in range(epochs):
        acc = quality * (1 - 0.5 ** (epoch + 1))
        callback.on_evaluate(ctx, {"val": {"accuracy": acc}})
    return acc


def test_median_pruning_stops_a_bad_trial_early_and_the_study_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    space = parse_space({"train.lr": "loguniform(1e-6, 1e-1)"})
    epochs_run = {}

    def objective(trial):
        params = suggest(trial, space)
        cb = PruneOnEvaluate(trial, "accuracy")
        try:
            return toy_fit(params["train.lr"], cb)
        finally:
            epochs_run[trial.number] = cb.reports

    study = make_study(storage, "toy", "maximize", seed=0)
    study.optimize(objective, n_trials=12)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "no trial was pruned"
    assert all(epochs_run[t.number] < 6 for t in pruned)        # stopped before the last epoch
    assert study.best_value > 0.5
    again = make_study(storage, "toy", "maximize", seed=0)      # the SQLite study resumes
    assert len(again.trials) == 12


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _tiny_dict(tmp_path, **extra) -> dict:
    import yaml
    d = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    d["data"].update({k: str(REPO / d["data"][k]) for k in ("train", "val", "test")})
    d["train"].update(epochs=3, progress="none")
    d.update(output_dir=str(tmp_path), **extra)
    return d


def test_pruning_inside_the_real_loop_ends_fit_at_that_evaluation(tmp_path):
    """PruneOnEvaluate is a plain callback: TrialPruned raised in on_evaluate ends train() right there."""
    import json

    from tunewright import train

    class Trial:                                   # prunes at its first report
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return True

    trial = Trial()
    with pytest.raises(optuna.TrialPruned):
        train(_tiny_dict(tmp_path), callbacks=[PruneOnEvaluate(trial, "accuracy")])
    assert [s for s, _ in trial.reports] == [0]
    rows = [json.loads(x) for x in (tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["split"] == "val"] == [1]       # one evaluation of three, then stop
    assert not (tmp_path / "tiny" / "summary.json").exists()


def test_tune_writes_best_config_and_the_sqlite_study_resumes(tmp_path):
    import json

    import yaml

    from tunewright.config import load_config
    from tunewright.tune import tune

    cfg = _tiny_dict(tmp_path, search_space={"train.lr": "loguniform(1e-5, 1e-2)"})
    out = tune(cfg, trials=2)
    study = json.loads((out / "study.json").read_text())
    assert study["trials"] == 2 and (out / "study.db").exists() and (out / "trials.csv").exists()
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["train"]["lr"] == pytest.approx(study["best_params"]["train.lr"])
    assert load_config(out / "best_config.yaml").train.lr == pytest.approx(study["best_params"]["train.lr"])
    tune(cfg, trials=1)                                                     # runs on from the stored study
    assert json.loads((out / "study.json").read_text())["trials"] == 3


def test_a_resumed_study_continues_the_samplers_sequence(tmp_path, monkeypatch):
    """`tunewright tune` run twice (2 + 2 trials) runs the trials one run of 4 does: the resumed study's
    new trials are not copies of the first two (TPE's first trials are random start-up trials)."""
    from types import SimpleNamespace

    import tunewright.run
    from tunewright.tune import tune

    def fake_train(cfg, **kw):      # the study and sampler are real; training is replaced by a formula
        return SimpleNamespace(summary={"val": {"accuracy": 1 - abs(cfg.train.lr - 1e-3)}, "test": {}})
    monkeypatch.setattr(tunewright.run, "train", fake_train)

    def lrs(study_dir):
        s = optuna.load_study(study_name="tiny", storage=f"sqlite:///{study_dir / 'study.db'}")
        return [t.params["train.lr"] for t in s.trials]

    space = {"search_space": {"train.lr": "loguniform(1e-5, 1e-2)"}}
    resumed = tune(_tiny_dict(tmp_path / "a", **space), trials=2)
    tune(_tiny_dict(tmp_path / "a", **space), trials=2)
    once = tune(_tiny_dict(tmp_path / "b", **space), trials=4)
    first, second = lrs(resumed)[:2], lrs(resumed)[2:]
    assert len(second) == 2 and not set(first) & set(second)
    assert lrs(resumed) == lrs(once)
