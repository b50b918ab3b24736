"""Property tests of tunewright_model.json, the description a saved model is rebuilt from (hypothesis,
fixed seed, bounded time).

A real tiny model is saved once (a BERT built from a config with its tokenizer, and a factory MLP);
each example copies the folder and replaces the JSON with random bytes or JSON, or mutates one value
of it. `read_meta` and `load_run_model` return a description / a model, or raise a tunewright error
that names the file; nothing else, and nothing hangs. Explicit regression tests keep what fuzzing found.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tunewright.errors import TunewrightError
from tunewright.models import load_model, load_run_model, save_run_model
from tunewright.models.save import META, read_meta

FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HANG = 30     # seconds: a hang, not slowness
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6)
                    | st.sampled_from(["hf", "factory", "efficientnet", "full", "adapter", "text", "image",
                                       "classification", "causal_lm", "mean", "auto", "tunewright-model"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


@pytest.fixture(scope="module")
def saved(tiny_bert_dir, factory_module, tmp_path_factory):
    from tunewright.config.schema import Config
    out = {}
    cfg = Config(task="classification")
    cfg.model.name = str(tiny_bert_dir)
    model, tok = load_model(cfg, 3)
    out["bert"] = save_run_model(model, tmp_path_factory.mktemp("bert") / "model", {"task": "classification"},
                                 ["a", "b", "c"], tok)
    cfg = Config(task="regression")
    cfg.model.name, cfg.model.factory_kwargs = f"{factory_module}:mlp", {"in_dim": 5}
    model, pre = load_model(cfg, None)
    out["mlp"] = save_run_model(model, tmp_path_factory.mktemp("mlp") / "model", {"task": "regression"}, None, pre)
    return out


def copy_of(src: Path, factory) -> Path:
    dst = factory.mktemp("m") / "model"
    shutil.copytree(src, dst)
    return dst


def check(folder: Path, time_limit) -> None:
    """The property: a description and a model, or a tunewright error naming the folder or its file."""
    with time_limit(HANG):
        try:
            meta = read_meta(folder)
            assert isinstance(meta, dict)
            model, _, _ = load_run_model(folder)
        except TunewrightError as e:
            assert str(folder) in str(e), e
            return
        assert isinstance(model, torch.nn.Module)


def mutate(tree, data):
    """Replace, delete or wrap the value at a random position of `tree`; two times in three inside the part
    that drives the rebuild (most random documents are refused by the first checks and never reach it)."""
    tree = copy.deepcopy(tree)
    path = [k for k in data.draw(st.sampled_from([(), ("source",), ("source", "config")]), label="start")]
    node = tree
    for i, k in enumerate(path):
        if not isinstance(node, dict) or k not in node:
            path = path[:i]                       # this saved model has no such part (a factory: no config)
            break
        node = node[k]
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans(), label="deeper"):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return data.draw(JSON, label="whole")
    *parents, last = path
    node = tree
    for k in parents:
        node = node[k]
    how = data.draw(st.sampled_from(["replace", "delete", "wrap"]))
    if how == "delete" and isinstance(node, dict):
        del node[last]
    elif how == "wrap":
        node[last] = [node[last]]
    else:
        node[last] = data.draw(JSON, label="value")
    return tree


@seed(20261202)
@FUZZ
@given(which=st.sampled_from(["bert", "mlp"]), data=st.data())
def test_a_mutated_model_description_loads_or_is_refused_by_name(saved, tmp_path_factory, time_limit, which, data):
    folder = copy_of(saved[which], tmp_path_factory)
    meta = json.loads((folder / META).read_text())
    (folder / META).write_text(json.dumps(mutate(meta, data)))
    check(folder, time_limit)


@seed(20261202)
@FUZZ
@given(content=st.binary(max_size=100) | JSON.map(lambda v: json.dumps(v).encode())
       | st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n))
def test_a_model_description_replaced_by_random_bytes_is_refused_by_name(saved, tmp_path_factory, time_limit,
                                                                         content):
    folder = copy_of(saved["mlp"], tmp_path_factory)
    (folder / META).write_bytes(content)
    check(folder, time_limit)


# ---------------------------------------------------------------- what the fuzzing found, kept

def _edit(src: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(src, folder)
    meta = json.loads((folder / META).read_text())
    edit(meta)                                   # in place
    (folder / META).write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("edit,must_say", [
    (lambda m: m.update(num_labels=None), "cannot be rebuilt: "),                     # an error without the file
    (lambda m: m.update(num_labels="3"), "key 'num_labels' is '3'"),
    (lambda m: m.update(pooling="weird"), "key 'pooling' is 'weird'"),                  # loaded; broke at forward
    (lambda m: m.update(task="sorting"), "key 'task' is 'sorting'"),
    (lambda m: m.update(version=99), "version 99 was written by a newer tunewright"),
    (lambda m: m.__delitem__("source"), "key 'source' is missing"),
    (lambda m: m["source"].update(type=["hf"]), "key 'source'"),
    (lambda m: m["source"]["config"].update(hidden_size="x"), "StrictDataclassFieldValidationError"),  # leaked
    (lambda m: m["source"]["config"].update(num_attention_heads=3), "cannot be rebuilt (ValueError"),
    (lambda m: m["source"].update(type="factory", target="no_such_module_tw:fn"), "cannot import module"),
])
def test_found_by_fuzzing_model_description(saved, tmp_path, edit, must_say):
    folder = _edit(saved["bert"], tmp_path, edit)
    with pytest.raises(TunewrightError) as e:
        load_run_model(folder)
    assert must_say in str(e.value) and str(folder) in str(e.value)


@pytest.mark.parametrize("text", ["[]", "null", "3", '"tunewright-model"'])
def test_found_by_fuzzing_a_description_that_is_not_an_object(saved, tmp_path, text):
    folder = tmp_path / "model"
    shutil.copytree(saved["mlp"], folder)
    (folder / META).write_text(text)                                                     # AttributeError: .get
    with pytest.raises(TunewrightError, match=f"{folder / META} is not a tunewright model description"):
        load_run_model(folder)


def test_found_by_fuzzing_a_deeply_nested_model_description(saved, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved["mlp"], folder)
    (folder / META).write_text("[" * 100_000 + "]" * 100_000)                            # RecursionError
    with pytest.raises(TunewrightError, match="is corrupt"):
        read_meta(folder)


@pytest.mark.parametrize("spec", [{"size": "224"}, {"size": 8, "mean": [0.5], "std": [1, 1, 1]},
                                  {"size": 8, "mean": [0, 0, 0], "std": [0, 1, 1]}])
def test_a_bad_image_spec_is_refused_by_name(saved, tmp_path, spec):
    folder = _edit(saved["mlp"], tmp_path, lambda m: m.update(image_spec=spec))
    with pytest.raises(TunewrightError, match="key 'image_spec'"):
        read_meta(folder)
