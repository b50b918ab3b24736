"""`eval --data` and `predict` read and validate their data before any model loads, as `train` does:
a malformed file fails at once, naming the file, and never costs a model load."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import tunewright.models
import tunewright.models.save
from tunewright.cli import predict_cmd
from tunewright.config import dump_yaml
from tunewright.config.load import config_from_dict
from tunewright.errors import DataError
from tunewright.run import evaluate_run

DATA = Path(__file__).resolve().parents[2] / "data"


class ModelLoaded(Exception):
    pass


@pytest.fixture
def loads(monkeypatch):
    """Every model load of a run folder goes through load_run_model: record it, and stop there."""
    calls = []

    def spy(*args, **kw):
        calls.append(args)
        raise ModelLoaded

    monkeypatch.setattr(tunewright.models, "load_run_model", spy)
    monkeypatch.setattr(tunewright.models.save, "load_run_model", spy)
    return calls


@pytest.fixture
def run_dir(tmp_path):
    cfg = config_from_dict({"model": {"name": "tiny-bert"},
                            "data": {"train": str(DATA / "tiny_train.csv"), "val": str(DATA / "tiny_val.csv"),
                                     "test": str(DATA / "tiny_test.csv")}})
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text(dump_yaml(cfg))
    labels = sorted({line.rsplit(",", 1)[1] for line in (DATA / "tiny_train.csv").read_text().splitlines()[1:]})
    (tmp_path / "run" / "model" / "tunewright_model.json").write_text(
        json.dumps({"format": "tunewright-model", "task": "classification", "num_labels": len(labels),
                    "pooling": "mean", "source": {"type": "packaged", "name": "tiny-bert"}, "label_names": labels}))
    return tmp_path / "run"


def test_eval_data_fails_on_bad_data_before_the_model_loads(run_dir, loads, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("headline,topic\nrain and wind today,weather\n")       # no text or label column
    with pytest.raises(DataError, match="bad.csv"):
        evaluate_run(run_dir, data=str(bad))
    assert loads == []
    with pytest.raises(ModelLoaded):                                      # good data: the model loads next
        evaluate_run(run_dir, data=str(DATA / "tiny_val.csv"))
    assert len(loads) == 1


def test_predict_fails_on_bad_input_before_the_model_loads(run_dir, loads, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("headline\nrain and wind today\n")                     # no text column
    args = SimpleNamespace(run_dir=str(run_dir), inputs=[str(bad)], output=None, batch_size=4)
    with pytest.raises(DataError, match="bad.csv"):
        predict_cmd.run(args)
    assert loads == []
    good = tmp_path / "good.csv"
    good.write_text("text\nrain and wind today\n")
    with pytest.raises(ModelLoaded):
        predict_cmd.run(SimpleNamespace(**{**vars(args), "inputs": [str(good)]}))
    assert len(loads) == 1
