"""What `load_checkpoint` checks in the decoded state before and after torch takes it.

torch's `load_state_dict` methods trust their input: an optimizer group whose `lr` is a list, a
scheduler whose `base_lrs` is a string, or an Adam moment that is a list, all load without a word,
and the run then fails at its next step, far from the file. A checkpoint's hashes only say that its
files are the ones written; a file written by another tool, edited by hand or crafted is checked
here, so that loading it fails with a CheckpointError naming the file and the key.

Checked are types and shapes, not meaning: a negative step count of the right type passes.
Only numbers are compared with the live objects, because torch versions change the other option
values (`verbose`, `fused`, ...) between None, bools and strings.
"""
from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor

from tunewright.errors import CheckpointError


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_numbers(saved, current, key: str, file: Path) -> None:
    """Where the live value `current` is a number, or a list/tuple/dict holding numbers, `saved` must be
    alike: a finite number (int or float), or a list/tuple of the same length, or a mapping, item by item."""
    if _is_number(current):
        if not (_is_number(saved) and math.isfinite(saved)):
            raise CheckpointError(f"{file}: {key} is {_short(saved)}, expected a finite number")
    elif isinstance(current, (list, tuple)) and any(_is_number(c) or isinstance(c, (list, tuple)) for c in current):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(current):
            raise CheckpointError(f"{file}: {key} is {_short(saved)}, expected a list of {len(current)}")
        for i, (s, c) in enumerate(zip(saved, current)):
            check_numbers(s, c, f"{key}[{i}]", file)
    elif isinstance(current, dict):
        if not isinstance(saved, dict):
            raise CheckpointError(f"{file}: {key} is {_short(saved)}, expected a mapping")
        for k in saved.keys() & current.keys():
            check_numbers(saved[k], current[k], f"{key}.{k}", file)


def check_header(state: dict, file: Path) -> None:
    """state.json's `format` is a number and `model` says whether the model state is partial."""
    if not _is_number(state["format"]) or not isinstance(state["format"], int):
        raise CheckpointError(f"{file}: 'format' is {_short(state['format'])}, not a format number")
    if not isinstance(state["model"], dict) or not isinstance(state["model"].get("partial"), bool):
        raise CheckpointError(f"{file}: 'model' is {_short(state['model'])}, expected {{'partial': true|false, ...}}")


def check_optimizer_layout(js, file: Path) -> None:
    """The JSON side of an optimizer state: {"state": {"<index>": {...}}, "param_groups": [{...}, ...]}."""
    if not (isinstance(js, dict) and isinstance(js.get("state"), dict) and isinstance(js.get("param_groups"), list)):
        raise CheckpointError(f"{file}: 'optimizer' is {_short(js)}, expected "
                              f"{{'state': {{index: {{...}}}}, 'param_groups': [...]}}")
    for k, v in js["state"].items():
        if not (k.isdigit() and k.isascii()) or not isinstance(v, dict):
            raise CheckpointError(f"{file}: optimizer.state.{k} is {_short(v)}; expected a parameter index "
                                  f"with a mapping of its state")
    for i, g in enumerate(js["param_groups"]):
        if not isinstance(g, dict) or not isinstance(g.get("params"), list):
            raise CheckpointError(f"{file}: optimizer.param_groups[{i}] is {_short(g)}, expected a mapping "
                                  f"with a 'params' list")


def check_optimizer_loaded(optimizer, file: Path) -> None:
    """After `optimizer.load_state_dict`: each parameter's state holds tensors of its shape (or 0-d, such
    as Adam's step) and plain numbers, nothing else."""
    for p, state in optimizer.state.items():
        for k, v in state.items():
            ok = (isinstance(v, Tensor) and (v.dim() == 0 or v.shape == p.shape)) or v is None \
                or isinstance(v, bool) or (_is_number(v) and math.isfinite(v))
            if not ok:
                what = f"a tensor of shape {tuple(v.shape)}" if isinstance(v, Tensor) else _short(v)
                raise CheckpointError(f"{file}: optimizer state {k!r} of a parameter of shape {tuple(p.shape)} is "
                                      f"{what}, expected a tensor of that shape or a number")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
