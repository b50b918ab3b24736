"""Property tests of tunewright_adapter.json, which says how a saved adapter is rebuilt (hypothesis, fixed
seed, bounded time).

Real adapters are saved once, without training: LoRA and a bottleneck adapter on tunewright's own layers
(a factory MLP, `backend: tunewright`) and LoRA through peft (the packaged tiny BERT, `backend: peft`).
Each example copies one, replaces its tunewright_adapter.json with random bytes or JSON or mutates one
value, and loads it onto a fresh copy of the base model. `read_info` and `load_adapter` return, or
raise a tunewright error naming the adapter's folder; nothing else, and nothing hangs. A `module`
outside `tunewright.peft.` is refused. Explicit regression tests keep what the fuzzing found.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tunewright.config import Config
from tunewright.errors import TunewrightError
from tunewright.models import load_model
from tunewright.peft import apply_method, load_adapter, save_run_adapter
from tunewright.peft.base import INFO, read_info

FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HANG = 30     # seconds: a hang, not slowness
WORDS = ["lora", "adapter", "bitfit", "ia3", "adalora", "tunewright.peft.lora", "tunewright.peft.adapter",
         "tunewright.peft.", "tunewright.peftx.lora", "os", "peft", "tunewright", "default", "a.b", "../x", "",
         "targets", "r", "alpha", "0", "path", "dim", "channel_dim", "houlsby", "relu"]
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6)
                    | st.sampled_from(WORDS),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5) | st.sampled_from(WORDS), inner, max_size=3),
                    max_leaves=8)
KINDS = {"mlp-lora": ("tunewright.zoo:mlp_trunk", "lora"), "mlp-adapter": ("tunewright.zoo:mlp_trunk", "adapter"),
         "bert-lora": ("tiny-bert", "lora")}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """kind -> (base model without the adapter, folder holding adapter/ and head.safetensors)."""
    out = {}
    for kind, (name, method) in KINDS.items():
        cfg = Config(task="classification", method=method)
        cfg.model.name, cfg.model.factory_kwargs = name, {"in_features": 6, "hidden": 8} if "mlp" in kind else {}
        base, _ = load_model(cfg, 3)
        model = copy.deepcopy(base)
        apply_method(model, cfg)
        folder = tmp_path_factory.mktemp(kind) / "model"
        save_run_adapter(model, folder, cfg)
        out[kind] = (base, folder)
    return out


def copy_of(folder: Path, factory) -> Path:
    dst = factory.mktemp("a") / "model"
    shutil.copytree(folder, dst)
    return dst


def check(base, folder: Path, time_limit) -> None:
    """The property: the adapter loads, or a tunewright error names its folder."""
    with time_limit(HANG):
        try:
            info = read_info(folder / "adapter")
            assert isinstance(info, dict) and info["module"].startswith("tunewright.peft.")
            load_adapter(copy.deepcopy(base), folder)
        except TunewrightError as e:
            assert str(folder) in str(e), e


def mutate(tree, data):
    """Replace, delete or wrap the value at a random position of `tree`; two times in three inside the part
    that drives the rebuild (most random documents are refused by the first checks and never reach it)."""
    tree = copy.deepcopy(tree)
    path = [k for k in data.draw(st.sampled_from([(), ("options",), ("options",)]), label="start")]
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
@given(kind=st.sampled_from(sorted(KINDS)), data=st.data())
def test_a_mutated_adapter_info_loads_or_is_refused_by_name(saved, tmp_path_factory, time_limit, kind, data):
    base, src = saved[kind]
    folder = copy_of(src, tmp_path_factory)
    info = json.loads((folder / "adapter" / INFO).read_text())
    (folder / "adapter" / INFO).write_text(json.dumps(mutate(info, data)))
    check(base, folder, time_limit)


@seed(20261202)
@FUZZ
@given(kind=st.sampled_from(sorted(KINDS)),
       content=st.binary(max_size=100) | JSON.map(lambda v: json.dumps(v).encode())
       | st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n))
def test_an_adapter_info_replaced_by_random_bytes_is_refused_by_name(saved, tmp_path_factory, time_limit, kind,
                                                                     content):
    base, src = saved[kind]
    folder = copy_of(src, tmp_path_factory)
    (folder / "adapter" / INFO).write_bytes(content)
    check(base, folder, time_limit)


# ---------------------------------------------------------------- what the fuzzing found, kept

def _edited(saved, kind, tmp_path, edit) -> tuple:
    base, src = saved[kind]
    folder = tmp_path / "model"
    shutil.copytree(src, folder)
    info = json.loads((folder / "adapter" / INFO).read_text())
    edit(info)
    (folder / "adapter" / INFO).write_text(json.dumps(info))
    return base, folder


@pytest.mark.parametrize("kind,edit,must_say", [
    ("mlp-lora", lambda i: i["options"].update(r={"a": 1}), "cannot be rebuilt on this model (TypeError"),
    ("mlp-lora", lambda i: i["options"].update(dropout={"p": 1}), "(TypeError"),
    ("mlp-lora", lambda i: i["options"].update(alpha=[16.0]), "(TypeError"),
    ("mlp-lora", lambda i: i["options"].update(targets={"": 1}), "(TypeError: LoRA wraps nn.Linear"),
    ("mlp-lora", lambda i: i["options"].update(targets="zz"), "(AttributeError"),
    ("mlp-lora", lambda i: i["options"].update(targets=[["0"]]), "(AttributeError"),
    ("mlp-lora", lambda i: i.update(options={}), "(KeyError: 'targets')"),
    ("mlp-adapter", lambda i: i["options"].update(activation=True), "(KeyError: True)"),
    ("bert-lora", lambda i: i.update(adapter_name="."), "key 'adapter_name' is '.'"),      # peft's KeyError
    ("bert-lora", lambda i: i.update(adapter_name=""), "key 'adapter_name' is ''"),
    ("bert-lora", lambda i: i.update(backend="other"), "key 'backend' is 'other'"),
    ("bert-lora", lambda i: i.update(method=["lora"]), "key 'method'"),
    ("mlp-lora", lambda i: i.update(format=2), "key 'format' is 2"),
    ("mlp-lora", lambda i: i.update(module="os"), "unknown adapter module 'os'"),
    ("bert-lora", lambda i: i.update(module="tunewright.peft.evil"), "not a method this tunewright knows"),
    ("mlp-lora", lambda i: i.update(method="adapter"), "not a method this tunewright knows"),   # module of lora
])
def test_found_by_fuzzing_adapter_info(saved, tmp_path, kind, edit, must_say):
    base, folder = _edited(saved, kind, tmp_path, edit)
    with pytest.raises(TunewrightError) as e:
        load_adapter(copy.deepcopy(base), folder)
    assert must_say in str(e.value) and str(folder) in str(e.value)


@pytest.mark.parametrize("content,must_say", [(b"\xff", "is corrupt"), (b"{", "is corrupt"),      # ValueError
                                              (b"[]", "not a tunewright adapter description"),    # AttributeError
                                              (b"[" * 100_000 + b"]" * 100_000, "is corrupt")])  # RecursionError
def test_found_by_fuzzing_an_adapter_info_that_is_not_an_object(saved, tmp_path, content, must_say):
    base, folder = _edited(saved, "mlp-lora", tmp_path, lambda i: None)
    (folder / "adapter" / INFO).write_bytes(content)
    with pytest.raises(TunewrightError, match=must_say):
        load_adapter(copy.deepcopy(base), folder)


def test_an_untouched_adapter_still_loads(saved, tmp_path):
    for kind in KINDS:
        base, folder = _edited(saved, kind, tmp_path / kind, lambda i: None)
        assert load_adapter(copy.deepcopy(base), folder) == "default"
