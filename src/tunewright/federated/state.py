"""The server's state after every round, so that a restarted server resumes where it stopped.

Flower keeps nothing across a server restart. After each completed round the driver writes

    <run>/server_state/round-0003/global.safetensors    the global tensors that travel
                                  strategy.safetensors  the strategy's own tensors (FedAdam/FedYogi: m_t, v_t)
                                  state.json            {"round": 3, "rows": [...metrics rows so far], ...}
    <run>/server_state/latest.json                      {"round": 3, "dir": "round-0003"}

A round folder is written under a temporary name and renamed (atomic on POSIX), then latest.json is
replaced atomically; older rounds are removed after. A crash at any point leaves the previous
complete round readable. safetensors and JSON only: nothing is unpickled on resume.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch

# The writers of training/checkpoint.py: fsynced safetensors (shared storage written once) and directories.
from ..training.checkpoint import _fsync_dir, _read_safetensors, _write_safetensors

# Attributes of a Flower strategy that change from round to round and must survive a restart.
# FedOpt (FedAdam, FedYogi, FedAdagrad) keeps its moments in m_t and v_t (dicts name -> ndarray).
STATEFUL = ("m_t", "v_t")


def strategy_tensors(strategy) -> dict[str, torch.Tensor]:
    from .server import inner
    s, out = inner(strategy), {}
    for attr in STATEFUL:
        value = getattr(s, attr, None)
        for k, a in (value or {}).items():
            out[f"{attr}/{k}"] = torch.from_numpy(np.ascontiguousarray(a))
    return out


def restore_strategy(strategy, tensors: dict[str, torch.Tensor]) -> None:
    from .server import inner
    s = inner(strategy)
    for attr in STATEFUL:
        part = {k.split("/", 1)[1]: t.numpy() for k, t in tensors.items() if k.startswith(attr + "/")}
        if part:
            setattr(s, attr, part)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=1))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_state(root, round_: int, global_tensors: dict[str, torch.Tensor], strategy,
               info: Optional[dict] = None) -> Path:
    """Write round `round_`'s state under `root` (atomically) and drop older rounds; returns its folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"round-{round_:04d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _write_safetensors(tmp / "global.safetensors", global_tensors)
    _write_safetensors(tmp / "strategy.safetensors", strategy_tensors(strategy) or {"_empty": torch.zeros(0)})
    _write_json(tmp / "state.json", {"round": round_, **(info or {})})
    _fsync_dir(tmp)
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _fsync_dir(root)
    _write_json(root / "latest.json", {"round": round_, "dir": name})
    _fsync_dir(root)
    for old in root.glob("round-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(root) -> Optional[tuple[int, dict, dict, dict]]:
    """(last completed round, global tensors, strategy tensors, info) or None when nothing was saved."""
    root = Path(root)
    latest = root / "latest.json"
    if not latest.is_file():
        return None
    where = root / json.loads(latest.read_text())["dir"]
    info = json.loads((where / "state.json").read_text())
    strategy = {k: v for k, v in _read_safetensors(where / "strategy.safetensors").items() if k != "_empty"}
    return int(info["round"]), _read_safetensors(where / "global.safetensors"), strategy, info
