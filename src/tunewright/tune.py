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

The sampler's state is kept beside the study (`sampler.pkl`, pickled after every trial, as Optuna's
FAQ advises for resuming), so a resumed study continues the sampler's sequence: its new trials are the
ones an uninterrupted study would have run. A sampler rebuilt from the seed would restart the sequence
and repeat the first (random start-up) trials bit for bit.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import sys
from pathlib import Path

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


def resume_sampler(path: Path, seed: int, trials_before: int):
    """The sampler saved after the last trial (its RNG where that trial left it). A study with trials but
    no saved sampler (begun by an older tunewright) gets TPE seeded from (seed, trials so far), so it
    does not repeat its first trials either; a new study, TPE seeded with `seed`."""
    import numpy as np
    import optuna
    if path.exists():
        try:
            with path.open("rb") as f:       # written by save_sampler in this study's own folder
                return pickle.load(f)
        except Exception as e:               # e.g. pickled by another Optuna version
            print(f"note: {path} could not be read ({type(e).__name__}: {e}); the sampler is seeded from "
                  f"train.seed and the {trials_before} trials so far instead", file=sys.stderr)
    if trials_before:
        seed = int(np.random.SeedSequence([seed, trials_before]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed)


def save_sampler(path: Path, sampler) -> None:
    """Pickle the sampler atomically (a kill mid-write leaves the previous file)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(sampler, f)
    os.replace(tmp, path)


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
    import optuna

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
    sampler_path = tune_dir / "sampler.pkl"
    study.sampler = resume_sampler(sampler_path, cfg.train.seed, len(study.trials))
    base = to_dict(cfg)
    base.update(search_space={}, compare=[])

    def objective(trial) -> float:
        params = suggest(trial, space)
        trial_cfg = config_from_dict(_with(base, params, run_name=f"trial-{trial.number}", output_dir=str(tune_dir)))
        result = train(trial_cfg, overwrite=True, callbacks=[PruneOnEvaluate(trial, metric)])
        trial.set_user_attr("test", result.summary["test"])
        return float(result.summary["val"][metric])

    study.optimize(objective, n_trials=trials, catch=(),
                   callbacks=[lambda study, trial: save_sampler(sampler_path, study.sampler)])
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
