"""changed_keys: which differences between a checkpoint's run record and a new run's refuse a resume."""
import copy

import pytest

from tunewright.config import Config
from tunewright.errors import TrainingError
from tunewright.training.resume_check import changed_keys, check_resume, run_record


def record(world=1, **sections):
    cfg = Config()
    for dotted, value in sections.items():
        obj = cfg
        *path, last = dotted.split("__")
        for p in path:
            obj = getattr(obj, p)
        setattr(obj, last, value)
    return run_record(cfg, world)


def matters(old, new):
    return {c.key for c in changed_keys(old, new) if c.matters}


def free(old, new):
    return {c.key for c in changed_keys(old, new) if not c.matters}


BASE = record()


@pytest.mark.parametrize("change,key", [
    ({"model__name": "tiny-bert"}, "config.model.name"),
    ({"method": "lora"}, "config.method"),
    ({"strategy": "partial"}, "config.strategy"),
    ({"strategy_options__train_top": 2}, "config.strategy_options.train_top"),
    ({"data__train": "other.csv"}, "config.data.train"),
    ({"data__max_length": 64}, "config.data.max_length"),
    ({"train__lr": 1e-3}, "config.train.lr"),
    ({"train__schedule": "cosine"}, "config.train.schedule"),
    ({"train__warmup_ratio": 0.1}, "config.train.warmup_ratio"),
    ({"train__epochs": 5}, "config.train.epochs"),
    ({"train__max_steps": 50}, "config.train.max_steps"),
    ({"train__seed": 1}, "config.train.seed"),
    ({"train__precision": "fp32"}, "config.train.precision"),
    ({"train__optimizer": "sgd"}, "config.train.optimizer"),
])
def test_a_setting_that_changes_the_training_is_refused(change, key):
    assert key in matters(BASE, record(**change))


def test_the_active_methods_options_matter_and_other_methods_options_do_not():
    lora = record(method="lora")
    assert "config.lora.r" in matters(lora, record(method="lora", lora__r=4))
    assert "config.adalora.init_r" in free(lora, record(method="lora", adalora__init_r=4))


def test_the_global_batch_matters_the_world_size_alone_does_not():
    one = record(world=1, train__batch_size=16)
    two = record(world=2, train__batch_size=8)            # 8 x 2 = 16 rows per micro-batch: the same batches
    assert matters(one, two) == set()
    assert {"world_size", "global_batch.world_size", "config.train.batch_size"} <= free(one, two)
    bigger = record(world=2, train__batch_size=16)
    assert matters(one, bigger) == {"global_batch.micro", "global_batch.per_step"}
    accum = record(world=1, train__batch_size=16, train__grad_accum=2)
    assert matters(one, accum) == {"global_batch.grad_accum", "global_batch.per_step"}


@pytest.mark.parametrize("change", [
    {"run_name": "other"}, {"output_dir": "elsewhere"}, {"tracking": ["tensorboard"]}, {"train__progress": "none"},
    {"train__log_every_steps": 1}, {"train__num_threads": 2}, {"checkpoint__keep_last": 5},
    {"checkpoint__every_steps": 7}, {"distributed__backend": "gloo"}, {"train__eval_batch_size": 4},
])
def test_a_setting_that_cannot_matter_may_change(change):
    new = record(**change)
    assert changed_keys(BASE, new) and matters(BASE, new) == set()


def test_data_files_are_fingerprinted(tmp_path):
    f = tmp_path / "train.csv"
    f.write_text("text,label\na,0\n")
    old = record(data__train=str(f))
    f.write_text("text,label\nb,0\n")                     # same name, other rows
    assert matters(old, record(data__train=str(f))) == {"data_fingerprint.train.sha256"}


def test_versions_are_noted_not_refused():
    new = copy.deepcopy(BASE)
    new["versions"]["torch"] = "9.9"
    assert free(BASE, new) == {"versions.torch"}


def test_check_resume_refuses_names_keys_forces_and_lets_old_checkpoints_through():
    logs = []
    with pytest.raises(TrainingError, match=r"config\.train\.lr: 5e-05 -> 0\.001") as e:
        check_resume(BASE, record(train__lr=1e-3), "ckpt", force=False, log=logs.append)
    assert "--force" in str(e.value)
    check_resume(BASE, record(train__lr=1e-3), "ckpt", force=True, log=logs.append)
    assert any("config.train.lr" in m for m in logs)
    check_resume(None, BASE, "ckpt", force=False, log=logs.append)       # no record: a note, not an error
    assert "no run record" in logs[-1]
