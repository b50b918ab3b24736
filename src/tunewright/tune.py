"""`tunewright tune CONFIG --trials N`: Optuna search over a space declared in the config.

    search_space:
      train.lr: loguniform(1e-5, 1e-2)
      lora.r: [4, 8, 16]               # a list: categorical
      train.warmup_ratio: uniform(0, 0.2)
      train.epochs: int(2, 6)

TPE sampling (seeded with train.seed), median pruning on the monitored validation metric after
each evaluation: a trial worse than the median of earlier trials at the same epoch stops there.
The study lives in Optuna's SQLite storage (`<output_dir>/<run_name>-tune/study.db`), so running
the command again resumes it and adds N more trials. The best config is written next to it.

Resuming: each trial gets a fresh TPE sampler seeded from (train.seed, the trial's number). TPE keeps no
state but its random generator (it reads the history from the storage), so a study resumed after 2 trials
runs exactly the trials an uninterrupted study would have, and none repeats an earlier one. (A sampler
rebuilt from train.seed alone restarted the sequence and repeated the first start-up trials bit for bit;
Optuna's FAQ pickles the sampler instead, but nothing in tunewright is unpickled.)
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from . import progress
from .config import dump_yaml, to_dict
from .config.load import config_from_dict
from .errors import ConfigError

SPEC = re.compile(r"^\s*(loguniform|uniform|int|logint)\s*\(\s*([^,]+)\s*,\s*([^)]+)\)\s*$")


def parse_space(space: dict) -> dict[str, tuple]:
    """{key: ("float", lo, hi, log) | ("int", lo, hi, log) | ("categorical", choices)}."""
    out = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"search_space.{key}: an empty list of choices.")
            out[key] = ("categorical", spec)
            continue
        m = SPEC.match(str(spec))
        if not m:
            raise ConfigError(f"search_space.{key}: {spec!r} is not a search space; use loguniform(a, b), "
                              f"uniform(a, b), int(a, b), logint(a, b) or a list of choices.")
        kind, lo, hi = m.group(1), float(m.group(2)), float(m.group(3))
        if not lo < hi:
            raise ConfigError(f"search_space.{key}: the lower bound {lo} must be below the upper bound {hi}.")
        if kind in ("int", "logint"):
            out[key] = ("int", int(lo), int(hi), kind == "logint")
        else:
            out[key] = ("float", lo, hi, kind == "loguniform")
    return out


def suggest(trial, space: dict[str, tuple]) -> dict:
    params = {}
    for key, s in space.items():
        if s[0] == "categorical":
            params[key] = trial.suggest_categorical(key, s[1])
        elif s[0] == "int":
            params[key] = trial.suggest_int(key, s[1], s[2], log=s[3])
        else:
            params[key] = trial.suggest_float(key, s[1], s[2], log=s[3])
    return params


class PruneOnEvaluate:
    """Reports the monitored validation metric to Optuna after each evaluation; raises TrialPruned
    (ending fit() there) when the pruner says the trial cannot beat the median."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric, self.reports = trial, metric, 0

    def on_evaluate(self, ctx, metrics: dict) -> None:
        import optuna
        value = metrics.get("val", {}).get(self.metric)
        if value is None:
            return
        self.trial.report(float(value), self.reports)   # step = evaluation index (one per epoch by default)
        self.reports += 1
        if self.trial.should_prune():
            pruned = optuna.TrialPruned(f"pruned after evaluation {self.reports}: {self.metric}={value:.4f}")
            pruned.tracker_status = "killed"     # stopped on purpose, not failed (tracking/base.py exit_status)
            raise pruned


def make_study(storage: str, name: str, direction: str, seed: int, n_startup_trials: int = 2, sampler=None):
    """The study `name` in `storage`, created or loaded; `sampler` defaults to TPE seeded with `seed`."""
    import optuna
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction=direction,
                               sampler=sampler or optuna.samplers.TPESampler(seed=seed),
                               pruner=optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials,
                                                                  n_warmup_steps=0))


def trial_sampler(seed: int, trial_number: int):
    """TPE for trial `trial_number`, seeded from (seed, trial_number): the same trial gets the same draws
    whether the study ran in one go or was resumed."""
    import numpy as np
    import optuna
    return optuna.samplers.TPESampler(seed=int(np.random.SeedSequence([seed, trial_number]).generate_state(1)[0]))


def _with(base: dict, params: dict, **top) -> dict:
    d = json.loads(json.dumps(base))
    for key, v in params.items():
        *path, last = key.split(".")
        node = d
        for p in path:
            node = node.setdefault(p, {})
        node[last] = v
    d.update(top)
    return d


def tune(config, overrides: list[str] | None = None, trials: int = 10) -> Path:

    from .run import as_config, train
    from .training.loop import monitored

    cfg = as_config(config, overrides)
    space = parse_space(cfg.search_space)
    if not space:
        raise ConfigError("search_space: empty; declare e.g. {train.lr: 'loguniform(1e-5, 1e-2)'} in the config.")
    metric, mode = monitored(cfg.task, cfg.train.metric)
    tune_dir = Path(cfg.output_dir) / f"{cfg.run_name}-tune"
    tune_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(tune_dir / 'study.db').resolve()}"
    study = make_study(storage, cfg.run_name, "minimize" if mode == "min" else "maximize", cfg.train.seed)
    base = to_dict(cfg)
    base.update(search_space={}, compare=[])

    def objective(trial) -> float:
        params = suggest(trial, space)
        trial_cfg = config_from_dict(_with(base, params, run_name=f"trial-{trial.number}", output_dir=str(tune_dir)))
        result = train(trial_cfg, overwrite=True, callbacks=[PruneOnEvaluate(trial, metric)])
        trial.set_user_attr("test", result.summary["test"])
        return float(result.summary["val"][metric])

    shown = progress.phase("tune", trials, "trials", outer=True)
    for _ in range(trials):                  # one trial at a time, each with its own seeded sampler
        study.sampler = trial_sampler(cfg.train.seed, len(study.trials))
        shown.say(f"trial {len(study.trials)}")
        study.optimize(objective, n_trials=1, catch=())
        last = study.trials[-1]
        shown.advance(1, note=f"trial {last.number}: {last.state.name.lower()}"
                      + (f", val {metric} {last.value:.4f}" if last.value is not None else ""))
    shown.close()
    best = study.best_trial
    (tune_dir / "best_config.yaml").write_text(dump_yaml(config_from_dict(_with(base, best.params,
                                                                                 run_name=f"{cfg.run_name}-best"))))
    study.trials_dataframe().to_csv(tune_dir / "trials.csv", index=False)
    states = [t.state.name for t in study.trials]
    (tune_dir / "study.json").write_text(json.dumps({
        "storage": storage, "study_name": cfg.run_name, "metric": metric, "direction": mode,
        "best_value": best.value, "best_params": best.params, "best_trial": best.number,
        "trials": len(states), "pruned": states.count("PRUNED"), "complete": states.count("COMPLETE")}, indent=2))
    print(f"best {metric} {best.value:.4f} (trial {best.number}): {best.params}; "
          f"{states.count('PRUNED')} of {len(states)} trials pruned; study: {storage}")
    return tune_dir
