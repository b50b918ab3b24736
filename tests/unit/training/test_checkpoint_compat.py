"""Checkpoints across releases, and a full disk during a save.

- tests/data/checkpoints/format1/ was written by release 0.1.0 (checkpoint format 1, by
  tests/data/checkpoints/make_fixture.py). Every later release must verify it, load it, and continue
  training from it exactly as the uninterrupted run does.
- A format this release does not know is refused with an error that names the file and both formats.
- ENOSPC in the middle of a save: a clear CheckpointError, the earlier checkpoints intact, and no
  half-written checkpoint that resume could take as complete.
"""
from __future__ import annotations

import errno
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from tunewright.errors import CheckpointError
from tunewright.training import checkpoint as ckpt

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "checkpoints"


def _maker():
    spec = importlib.util.spec_from_file_location("make_fixture", FIXTURES / "make_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_format1_fixture_loads_and_resumes_exactly(tmp_path):
    root = tmp_path / "format1"
    shutil.copytree(FIXTURES / "format1", root)
    path = root / "step-000004"
    assert ckpt.verify_checkpoint(path) is None
    mk = _maker()
    model, opt, sched = mk.build()
    state = ckpt.load_checkpoint(path, model=model, optimizer=opt, scheduler=sched)
    expected = json.loads((root / "expected.json").read_text())
    for k, v in model.state_dict().items():
        assert torch.equal(v, torch.tensor(expected[k])), k
    assert opt.param_groups[0]["lr"] == expected["lr"] and state["loop"]["step"] == 4
    # Continue 3 steps from the old checkpoint; equal to 7 uninterrupted steps of today's code. Bit-equal
    # only where this CPU computes the fixture's first 4 steps to the same bits (it was written on an Intel
    # Xeon; an AVX2-only AMD EPYC rounds differently in the last bit): elsewhere, equal to float32 rounding.
    mk.train_steps(model, opt, sched, 3, seed=2)
    ref, ropt, rsched = mk.build()
    mk.train_steps(ref, ropt, rsched, 4)
    same_bits = all(torch.equal(v, torch.tensor(expected[k])) for k, v in ref.state_dict().items())
    mk.train_steps(ref, ropt, rsched, 3, seed=2)
    for (k, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        if same_bits:
            assert torch.equal(a, b), k
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_an_unknown_format_is_refused_by_name(tmp_path):
    root = tmp_path / "future"
    shutil.copytree(FIXTURES / "format1", root)
    path = root / "step-000004"
    state = json.loads((path / "state.json").read_text())
    state["format"] = ckpt.FORMAT + 1
    (path / "state.json").write_text(json.dumps(state))
    manifest = json.loads((path / "manifest.json").read_text())   # keep it valid: only the format is new
    manifest["files"]["state.json"] = {"sha256": ckpt._sha256(path / "state.json"),
                                       "size": (path / "state.json").stat().st_size}
    (path / "manifest.json").write_text(json.dumps(manifest))
    model, opt, sched = _maker().build()
    with pytest.raises(CheckpointError, match=rf"state.json: format {ckpt.FORMAT + 1} was written by a"):
        ckpt.load_checkpoint(path, model=model, optimizer=opt, scheduler=sched)


def test_full_disk_during_a_save_keeps_the_earlier_checkpoints(tmp_path, monkeypatch):
    model, opt, sched = _maker().build()
    root = tmp_path / "ckpt"
    first = ckpt.save_checkpoint(root, 1, model=model, optimizer=opt, scheduler=sched, trainer_state={"s": 1})
    real = ckpt._write_safetensors
    calls = {"n": 0}

    def fill_up(path, tensors):
        calls["n"] += 1
        if calls["n"] == 2:                                   # the optimizer file, after the model file
            path.write_bytes(b"\0" * 100)                     # half a file, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, tensors)

    monkeypatch.setattr(ckpt, "_write_safetensors", fill_up)
    with pytest.raises(CheckpointError, match=r"no space left on the device while writing checkpoint step-000002"
                                              r".*earlier checkpoints are untouched \(step-000001\)"):
        ckpt.save_checkpoint(root, 2, model=model, optimizer=opt, scheduler=sched, trainer_state={"s": 2})
    assert [p.name for p in root.iterdir()] == ["step-000001"]   # no step-000002, no .tmp-* left
    assert ckpt.latest_valid(root) == first and ckpt.verify_checkpoint(first) is None
