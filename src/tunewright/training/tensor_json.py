"""Checkpoint state as JSON plus named tensors: the codec `training/checkpoint.py` uses.

Optimizer, scheduler and trainer state mix tensors with plain values. Pickle would keep both but
runs code on load, so tensors go to safetensors under a name and JSON keeps `{"__tensor__": name}`
in their place; `{"__tuple__": [...]}` marks a tuple (AdamW's `betas`) so types survive the trip.
"""
from __future__ import annotations

from pathlib import Path

from torch import Tensor

from tunewright.errors import CheckpointError

_TENSOR, _TUPLE = "__tensor__", "__tuple__"


def _encode(value, name: str, tensors: dict[str, Tensor], *, where: str, skip: bool = False):
    """Turn `value` into JSON; each tensor goes to `tensors[name]` and leaves a reference.

    With skip=True, values JSON can't hold (callables, objects) are dropped from dicts and
    become None in lists: used for scheduler state, whose lambdas are rebuilt by the caller.
    """
    if isinstance(value, Tensor):
        if name in tensors:
            raise CheckpointError(f"not saving {where}: two values map to tensor name {name!r}")
        tensors[name] = value
        return {_TENSOR: name}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = []
        for i, v in enumerate(value):
            try:
                items.append(_encode(v, f"{name}.{i}", tensors, where=where, skip=skip))
            except _Unencodable:
                if not skip:
                    raise
                items.append(None)
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or k in (_TENSOR, _TUPLE):
                if skip:
                    continue
                raise _Unencodable(f"not saving {where}: {name} has key {k!r}; keys must be str "
                                   f"other than {_TENSOR!r} and {_TUPLE!r}")
            try:
                out[k] = _encode(v, f"{name}.{k}", tensors, where=where, skip=skip)
            except _Unencodable:
                if not skip:
                    raise
        return out
    raise _Unencodable(f"not saving {where}: {name} is a {type(value).__module__}."
                       f"{type(value).__qualname__}, which JSON can't hold exactly "
                       f"(use str/int/float/bool/None, lists, str-keyed dicts, tensors)")


class _Unencodable(CheckpointError):
    pass


def _decode(value, tensors: dict[str, Tensor], file: Path):
    if isinstance(value, list):
        return [_decode(v, tensors, file) for v in value]
    if isinstance(value, dict):
        if set(value) == {_TENSOR}:
            if not isinstance(value[_TENSOR], str) or value[_TENSOR] not in tensors:
                raise CheckpointError(f"{file}: missing tensor {value[_TENSOR]!r}")
            return tensors[value[_TENSOR]]
        if set(value) == {_TUPLE}:
            if not isinstance(value[_TUPLE], list):
                # The JSON side of `file` is the state.json beside it (checkpoint.py's layout).
                raise CheckpointError(f"{file.with_name('state.json')}: {_TUPLE!r} must hold a list, "
                                      f"not {value[_TUPLE]!r}")
            return tuple(_decode(v, tensors, file) for v in value[_TUPLE])
        return {k: _decode(v, tensors, file) for k, v in value.items()}
    return value


def _encode_optimizer(sd: dict, tensors: dict[str, Tensor], where: str) -> dict:
    # torch keys per-parameter state by the parameter's index in param_groups[*]["params"].
    state = {}
    for idx, per_param in sd["state"].items():
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise CheckpointError(f"not saving {where}: optimizer state key {idx!r} is not a "
                                  f"parameter index")
        state[str(idx)] = _encode(per_param, f"state.{idx}", tensors, where=where)
    groups = [_encode(g, f"param_groups.{i}", tensors, where=where)
              for i, g in enumerate(sd["param_groups"])]
    return {"state": state, "param_groups": groups}


def _decode_optimizer(js: dict, tensors: dict[str, Tensor], file: Path) -> dict:
    return {"state": {int(k): _decode(v, tensors, file) for k, v in js["state"].items()},
            "param_groups": _decode(js["param_groups"], tensors, file)}
