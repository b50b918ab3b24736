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
