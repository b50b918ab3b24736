"""Property tests of the checkpoint decoder (hypothesis, fixed seed, bounded time).

A real small checkpoint (an MLP, AdamW, a LambdaLR schedule, trainer state, RNG) is written once; each
example copies it, then replaces or mutates its manifest.json, its state.json or a tensor file.
Where the manifest would stop verification before the decoder is reached, its sha256 and size are
recomputed, so the decoder itself reads the bad content. `verify_checkpoint` returns None or a
reason, never raises; `load_checkpoint` returns the trainer state or raises a CheckpointError
that names the checkpoint's file; neither hangs. Explicit regression tests keep what the fuzzing found.
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
from safetensors.torch import save_file

from tunewright.errors import CheckpointError
from tunewright.optim import build_scheduler
from tunewright.training.checkpoint import _sha256, load_checkpoint, save_checkpoint, verify_checkpoint
from tunewright.training.loop import TrainState

FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HANG = 20     # seconds: a hang, not slowness
FILES = ["model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json", "manifest.json",
         "state.safetensors"]
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6)
                    | st.sampled_from(["__tensor__", "__tuple__", "state.0.exp_avg", "torch.cpu", "MT19937"]),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.text(max_size=6) | st.sampled_from(["__tensor__", "__tuple__", "state", "param_groups",
                                                               "files", "size", "sha256", "format", "partial"]),
                        inner, max_size=4), max_leaves=10)


def build():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.1), torch.nn.Linear(4, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, opt, build_scheduler(opt, "linear", 10, 0.1)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    model, opt, sched = build()
    for _ in range(2):
        model(torch.randn(5, 3)).sum().backward()
        opt.step()
        sched.step()
    root = tmp_path_factory.mktemp("template")
    trainer_state = {"loop": TrainState(step=2).to_dict(), "callbacks": {"Keeps": {"t": torch.ones(2), "k": (1, 2)}}}
    return save_checkpoint(root, 2, model=model, optimizer=opt, scheduler=sched, trainer_state=trainer_state)


def copy_of(template, factory) -> Path:
    dst = factory.mktemp("ck") / template.name
    shutil.copytree(template, dst)
    return dst


def rehash(path: Path, names=None) -> None:
    """Make manifest.json list `names` (default: what it lists) with their current sha256 and size."""
    manifest = json.loads((path / "manifest.json").read_text())
    for name in names or list(manifest["files"]):
        manifest["files"][name] = {"sha256": _sha256(path / name), "size": (path / name).stat().st_size}
    (path / "manifest.json").write_text(json.dumps(manifest))


def check(path: Path, time_limit) -> None:
    """The property: a reason or None from verify; the state or a CheckpointError naming a file from load."""
    with time_limit(HANG):
        reason = verify_checkpoint(path)
        assert reason is None or (isinstance(reason, str) and str(path) in reason)
        model, opt, sched = build()
        try:
            load_checkpoint(path, model=model, optimizer=opt, scheduler=sched)
        except CheckpointError as e:
            assert str(path) in str(e), e
            return
        # Loaded: it verified. (Values of the right type and shape whose meaning is wrong, such as a
        # negative AdamW step count in a file whose hashes were recomputed, are not looked for.)
        assert reason is None


def at_path(tree, data):
    """A random position inside `tree` (a list of keys/indices), drawn with hypothesis `data`."""
    path, node = [], tree
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans(), label="deeper"):
        key = data.draw(st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    return path


def mutate(tree, data):
    """Replace, delete or wrap the value at a random position of `tree` (a parsed JSON document)."""
    tree = copy.deepcopy(tree)
    path = at_path(tree, data)
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
@given(data=st.data())
def test_a_mutated_state_json_is_loaded_or_refused_by_name(template, tmp_path_factory, time_limit, data):
    path = copy_of(template, tmp_path_factory)
    state = json.loads((path / "state.json").read_text())
    (path / "state.json").write_text(json.dumps(mutate(state, data)))
    rehash(path, ["state.json"])
    check(path, time_limit)


@seed(20261202)
@FUZZ
@given(data=st.data())
def test_a_mutated_manifest_is_verified_or_refused_by_name(template, tmp_path_factory, time_limit, data):
    path = copy_of(template, tmp_path_factory)
    manifest = json.loads((path / "manifest.json").read_text())
    bad_names = st.sampled_from(["../x", "..", ".", "", "/etc/passwd", "a/b", "model.safetensors/", "\x00",
                                 "state.json\x00", "..\\x", "~", *FILES])
    how = data.draw(st.sampled_from(["name", "entry", "anywhere"]))
    if how == "name":                       # a file name that is not a plain name in the folder
        name = data.draw(bad_names, label="name")
        manifest["files"][name] = data.draw(st.sampled_from(list(manifest["files"].values())) | JSON)
    elif how == "entry":                    # a listed file's size or hash
        entry = manifest["files"][data.draw(st.sampled_from(sorted(manifest["files"])), label="file")]
        odd = st.sampled_from([float("inf"), float("-inf"), float("nan"), -1, 0, 2**64, "12", "", None, True])
        entry[data.draw(st.sampled_from(["size", "sha256"]), label="field")] = data.draw(odd | JSON, label="value")
    else:
        manifest = mutate(manifest, data)
    (path / "manifest.json").write_text(json.dumps(manifest))
    check(path, time_limit)


@seed(20261202)
@FUZZ
@given(which=st.sampled_from(["state.json", "manifest.json", "model.safetensors", "optimizer.safetensors",
                              "rng.safetensors", "state.safetensors"]),
       content=st.binary(max_size=120) | JSON.map(lambda v: json.dumps(v).encode())
       | st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n), fix_hash=st.booleans())
def test_a_file_replaced_by_random_bytes_or_json_is_refused_by_name(template, tmp_path_factory, time_limit,
                                                                    which, content, fix_hash):
    path = copy_of(template, tmp_path_factory)
    (path / which).write_bytes(content)
    if fix_hash and which != "manifest.json":
        rehash(path, [which])
    check(path, time_limit)


TENSORS = st.dictionaries(st.sampled_from(["torch.cpu", "0.weight", "2.bias", "state.0.exp_avg", "state.0.step",
                                           "trainer_state.callbacks.Keeps.t", "x"]),
                          st.tuples(st.sampled_from([torch.uint8, torch.float32, torch.int64, torch.bfloat16]),
                                    st.lists(st.integers(0, 5), max_size=2)), max_size=4)


@seed(20261202)
@FUZZ
@given(which=st.sampled_from(["model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.safetensors"]),
       tensors=TENSORS, aliases=st.sampled_from(["{}", '{"y": "x"}', '{"y": "nope"}', "[1]", "not json", '{"a": 1}']))
def test_a_valid_safetensors_file_with_the_wrong_tensors_is_refused_by_name(template, tmp_path_factory, time_limit,
                                                                          which, tensors, aliases):
    path = copy_of(template, tmp_path_factory)
    save_file({k: torch.zeros(shape, dtype=dt) for k, (dt, shape) in tensors.items()}, str(path / which),
              metadata={"format": "pt", "tunewright.aliases": aliases})
    rehash(path, [which])
    check(path, time_limit)


# ---------------------------------------------------------------- what the fuzzing found, kept

def _edit_state(path: Path, keys: list, value=None, how="replace") -> None:
    state = json.loads((path / "state.json").read_text())
    node = state
    for k in keys[:-1]:
        node = node[k]
    if how == "delete":
        del node[keys[-1]]
    elif how == "wrap":
        node[keys[-1]] = [node[keys[-1]]]
    else:
        node[keys[-1]] = value
    (path / "state.json").write_text(json.dumps(state))
    rehash(path, ["state.json"])


@pytest.mark.parametrize("keys,value,how,must_say", [
    (["format"], None, "wrap", "'format' is [1]"),                                     # TypeError: list > int
    (["model"], None, "wrap", "'model' is ["),                                         # TypeError
    (["model", "partial"], None, "delete", "'model' is {"),                            # KeyError
    (["optimizer"], None, "wrap", "'optimizer' is ["),                                 # TypeError
    (["optimizer", "state"], None, "delete", "'optimizer' is {"),                      # KeyError
    (["optimizer", "state"], [], "replace", "'optimizer' is {"),                       # AttributeError: .items
    (["optimizer", "state", ""], {}, "replace", "optimizer.state."),                   # ValueError: int('')
    (["optimizer", "state", "0"], None, "wrap", "optimizer.state.0 is ["),             # TypeError
    (["optimizer", "param_groups"], None, "replace", "'optimizer' is {"),              # TypeError: len(None)
    (["optimizer", "param_groups"], None, "wrap", "optimizer.param_groups[0] is ["),   # TypeError
    (["optimizer", "param_groups", 0, "lr"], [0.1], "replace", "param_groups[0].lr is [0.1]"),  # loaded, then broke
    (["optimizer", "state", "0", "step", "__tensor__"], None, "wrap", "missing tensor"),  # unhashable list
    (["optimizer", "state", "0", "exp_avg"], [1.0, 2.0], "replace", "'exp_avg'"),      # loaded; next step: no .lerp_
    (["scheduler"], False, "replace", "scheduler is False, expected a mapping"),       # TypeError
    (["scheduler"], None, "wrap", "expected a mapping"),                               # ValueError: dict.update
    (["scheduler", "base_lrs"], "0.1", "replace", "scheduler.base_lrs"),               # loaded, then broke
    (["scheduler", "lr_lambdas"], [False], "replace", "'scheduler' does not fit"),     # TypeError in torch
    (["trainer_state"], {"__tuple__": None}, "replace", "'__tuple__' must hold a list"),  # TypeError
    (["rng", "python", "state"], [1, 2, 3], "replace", "not a random generator state"),  # ValueError in random
    (["rng", "numpy"], None, "delete", "not a random generator state"),                # KeyError
])
def test_found_by_fuzzing_state_json(template, tmp_path, keys, value, how, must_say):
    path = tmp_path / template.name
    shutil.copytree(template, path)
    _edit_state(path, keys, value, how)
    model, opt, sched = build()
    with pytest.raises(CheckpointError, match="state.json|optimizer.safetensors|rng.safetensors") as e:
        load_checkpoint(path, model=model, optimizer=opt, scheduler=sched)
    assert must_say in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize("which,tensors,aliases,must_say", [
    ("model.safetensors", {}, '{"y": "x"}', "must map names to tensors"),           # KeyError
    ("rng.safetensors", {}, "{}", "not a random generator state"),                  # KeyError: 'torch.cpu'
    ("rng.safetensors", {"torch.cpu": torch.zeros(1, dtype=torch.uint8)}, "{}", "not a random generator state"),
])
def test_found_by_fuzzing_tensor_files(template, tmp_path, which, tensors, aliases, must_say):
    path = tmp_path / template.name
    shutil.copytree(template, path)
    save_file(tensors, str(path / which), metadata={"format": "pt", "tunewright.aliases": aliases})
    rehash(path, [which])
    with pytest.raises(CheckpointError, match=must_say):
        load_checkpoint(path, model=build()[0], optimizer=build()[1], scheduler=None)


@pytest.mark.parametrize("edit,must_say", [
    (lambda m: m["files"]["model.safetensors"].update(size=float("inf")), "bad entry"),  # OverflowError
    (lambda m: m["files"].update({"../x": m["files"]["state.json"]}), "bad file name '../x'"),
    (lambda m: m["files"].update({"/etc/passwd": m["files"]["state.json"]}), "bad file name"),
    (lambda m: m["files"].update({"": m["files"]["state.json"]}), "bad file name ''"),
    (lambda m: m["files"].update({"a\x00": m["files"]["state.json"]}), "bad file name"),
])
def test_found_by_fuzzing_manifest(template, tmp_path, edit, must_say):
    path = tmp_path / template.name
    shutil.copytree(template, path)
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert must_say in verify_checkpoint(path)
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(path, model=build()[0])


def test_found_by_fuzzing_a_deeply_nested_manifest(template, tmp_path):
    path = tmp_path / template.name
    shutil.copytree(template, path)
    (path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)   # RecursionError
    assert "unreadable manifest (RecursionError" in verify_checkpoint(path)


def test_a_state_json_without_a_step_does_not_verify(template, tmp_path):
    """run.py reads state.json's step of the checkpoint it resumes from; verification promises it is there."""
    path = tmp_path / template.name
    shutil.copytree(template, path)
    _edit_state(path, ["step"], how="delete")
    assert "no step number" in verify_checkpoint(path)
