"""Checkpoints that are safe to load and exact to resume from.

Why this is hand-written:
- `torch.save` pickles, and loading a pickle runs arbitrary code. A checkpoint downloaded or
  shared between users must not be able to do that, so nothing here pickles or unpickles.
- safetensors stores tensors only: no optimizer hyperparameters, step counters or RNG states
  of Python and NumPy.
- accelerate's `save_state` writes weights as safetensors but the optimizer, scheduler and RNG
  states through `torch.save`, i.e. pickles again.
So tensors go to safetensors and everything else to JSON, and the two are joined on load.

Layout of one checkpoint::

    <root>/step-000123/
        model.safetensors       model.state_dict() (or the explicit `model_state`)
        optimizer.safetensors   optimizer state tensors, named state.<param_index>.<key>
        rng.safetensors         torch.cpu, torch.cuda.<i>, torch.mps generator states (uint8)
        state.safetensors       only if trainer_state or the scheduler hold tensors
        state.json              step, version, timestamp, trainer_state, scheduler, optimizer
                                param_groups and non-tensor state, Python/NumPy RNG
        manifest.json           sha256 and size of every file above; written last

A JSON value `{"__tensor__": "name"}` points at tensor `name` in the matching safetensors
file; `{"__tuple__": [...]}` is a tuple (optimizer `betas`), so types survive the round trip.
Tensors that share storage (tied weights) are written once; the other names are recorded in
the safetensors metadata key `tunewright.aliases` and point at the same tensor on load.

Atomicity: a checkpoint is written into `<root>/.tmp-step-000123-<pid>/`, every file fsync'ed,
the manifest written last, then the folder is renamed to `step-000123` and `<root>` fsync'ed.
A crash leaves either no `step-*` folder or a complete one. Stale `.tmp-*` folders (of this
process or of processes no longer alive) are deleted at the next save.

Verification cost: `verify_checkpoint`, `latest_valid` and `load_checkpoint` always hash every
file (resume is rare and must be right). Retention after a save walks checkpoints newest to
oldest and hash-verifies only until `keep_last` valid ones are found; anything older is deleted
unhashed. The checkpoint just written is not re-hashed (its hashes were computed from the
bytes on disk), and results are cached for the session by (path, size, mtime, ctime, inode) of
every file, so with keep_last=2 a save hashes at most one older checkpoint, once.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from tunewright.version import __version__
from tunewright.errors import CheckpointError
from tunewright.training import rng as _rng
from tunewright.training import state_checks as _checks
from tunewright.training.tensor_json import _decode, _decode_optimizer, _encode, _encode_optimizer

__all__ = ["save_checkpoint", "list_checkpoints", "verify_checkpoint", "latest_valid",
           "load_checkpoint", "prune_checkpoints", "read_record"]

FORMAT = 1
MODEL, OPTIMIZER, RNG, EXTRA = "model.safetensors", "optimizer.safetensors", "rng.safetensors", \
    "state.safetensors"
STATE, MANIFEST = "state.json", "manifest.json"
REQUIRED = (MODEL, OPTIMIZER, RNG, STATE)
_STEP_DIR = re.compile(r"^step-(\d+)$")
_STATE_KEYS = ("format", "model", "trainer_state", "scheduler", "optimizer", "rng")
_ALIASES = "tunewright.aliases"
_CHUNK = 1 << 20

# path -> fingerprint of its files when it last verified as valid (see module docstring)
_verified: dict[str, tuple] = {}


# ---------------------------------------------------------------- public API

def save_checkpoint(root, step: int, *, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    scheduler=None, trainer_state: dict, keep_last: int = 2,
                    model_state: dict[str, Tensor] | None = None, record: dict | None = None) -> Path:
    """Write `<root>/step-<step:06d>/` atomically and return its path.

    `model_state` replaces `model.state_dict()` (e.g. only trainable parameters); if its keys
    differ from the model's, the checkpoint is marked partial and loads with strict=False.
    Raises CheckpointError, before writing anything, if a floating tensor of the model state
    holds NaN or inf, or if trainer_state / optimizer state are not JSON-able.
    After the save, older checkpoints beyond the newest `keep_last` valid ones are deleted.
    `record` (JSON): what made the run (config, data fingerprint, versions, world size, global batch),
    read back by `read_record` so a resume with changed settings can be refused.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise ValueError(f"keep_last must be an int >= 1, got {keep_last!r}")
    root = Path(root)
    name = f"step-{step:06d}"
    where = f"checkpoint {name} under {root}"

    # Everything is gathered and checked before the first byte is written.
    full_state = model.state_dict()
    state = full_state if model_state is None else model_state
    partial = model_state is not None and set(model_state) != set(full_state)
    _check_model_state(state, where)

    opt_tensors: dict[str, Tensor] = {}
    opt_json = None if optimizer is None else _encode_optimizer(optimizer.state_dict(),
                                                                opt_tensors, where)
    extra_tensors: dict[str, Tensor] = {}
    trainer_json = _encode(trainer_state, "trainer_state", extra_tensors, where=where)
    sched_json = None
    if scheduler is not None:
        sched_json = _encode(scheduler.state_dict(), "scheduler", extra_tensors, where=where,
                             skip=True)
    rng_tensors, rng_json = _rng.capture_rng()
    state_json = {
        "format": FORMAT, "step": step, "tunewright_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"partial": partial, "tensors": len(state)},
        "trainer_state": trainer_json, "scheduler": sched_json, "optimizer": opt_json,
        "record": record,
        "rng": rng_json,  # last: 1,250 ints of Mersenne Twister state
    }
    state_bytes = json.dumps(state_json, indent=1).encode()

    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root)
    tmp = root / f".tmp-{name}-{os.getpid()}"
    final = root / name
    try:
        tmp.mkdir()
        files = {MODEL: lambda p: _write_safetensors(p, state),
                 OPTIMIZER: lambda p: _write_safetensors(p, opt_tensors),
                 RNG: lambda p: _write_safetensors(p, rng_tensors),
                 STATE: lambda p: _write_bytes(p, state_bytes)}
        if extra_tensors:
            files[EXTRA] = lambda p: _write_safetensors(p, extra_tensors)
        manifest = {"format": FORMAT, "step": step, "files": {}}
        for fname, write in files.items():
            write(tmp / fname)  # each writer fsyncs
            manifest["files"][fname] = {"sha256": _sha256(tmp / fname),
                                        "size": (tmp / fname).stat().st_size}
        _write_bytes(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
        _fsync_dir(tmp)
        if final.exists():  # the same step saved again (e.g. after a resume): replace it
            old = root / f".tmp-replaced-{name}-{os.getpid()}"
            os.rename(final, old)
            try:
                os.rename(tmp, final)
            except BaseException:
                os.rename(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = [c.name for c in list_checkpoints(root)]
            raise CheckpointError(f"no space left on the device while writing {where} ({e.strerror}). Nothing of "
                                  f"it was kept; the earlier checkpoints are untouched ({', '.join(kept) or 'none'}). "
                                  f"Free space, then continue with --resume.") from e
        raise
    _verified[str(final)] = _fingerprint(final)  # hashed above from the bytes on disk
    prune_checkpoints(root, keep_last)
    return final


def list_checkpoints(root) -> list[Path]:
    """Finished `step-*` folders under `root`, oldest to newest by step.

    Folders still being written (`.tmp-*`) are never listed. Listed does not mean intact:
    use verify_checkpoint / latest_valid for that.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def verify_checkpoint(path) -> str | None:
    """None if every file matches the manifest (size, sha256) and parses, else the reason.

    The reason names the checkpoint folder and the file at fault.
    """
    path = Path(path)
    if not path.is_dir():
        return f"{path}: not a directory"
    mpath = path / MANIFEST
    if not mpath.is_file():
        return f"{mpath}: missing manifest (checkpoint incomplete or not written by tunewright)"
    try:
        manifest = json.loads(mpath.read_text())
        entries = manifest["files"]
        if not isinstance(entries, dict):
            raise TypeError("'files' is not an object")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:   # RecursionError: [[[[...
        return f"{mpath}: unreadable manifest ({type(e).__name__}: {e})"
    for fname in REQUIRED:
        if fname not in entries:
            return f"{path / fname}: not listed in the manifest"
    for fname, entry in entries.items():
        if not isinstance(fname, str) or Path(fname).name != fname or fname in ("", ".", "..") or "\x00" in fname:
            return f"{mpath}: bad file name {fname!r} (must be a plain name in the folder)"
        fpath = path / fname
        if not fpath.is_file():
            return f"{fpath}: missing file"
        try:
            size, sha = int(entry["size"]), str(entry["sha256"])
        except (KeyError, TypeError, ValueError, OverflowError):   # OverflowError: a size of 1e400 (inf)
            return f"{mpath}: bad entry for {fname!r}: {entry!r}"
        actual = fpath.stat().st_size
        if actual != size:
            return f"{fpath}: size {actual} bytes, manifest says {size} (truncated or overwritten)"
        if _sha256(fpath) != sha:
            return f"{fpath}: sha256 does not match the manifest (file corrupted)"
        try:
            if fname.endswith(".safetensors"):
                with safe_open(fpath, framework="pt") as f:
                    f.keys()
                    f.metadata()
            elif fname.endswith(".json"):
                doc = json.loads(fpath.read_text())
                if fname == STATE and not (isinstance(doc, dict) and type(doc.get("step")) is int):  # not a bool
                    return f"{fpath}: no step number in it (resume reads it)"
        except Exception as e:  # any parse failure means unreadable, whatever the library raises
            return f"{fpath}: unreadable ({type(e).__name__}: {e})"
    return None


def latest_valid(root, log: Callable[[str], Any] = print) -> Path | None:
    """The newest checkpoint under `root` that verifies, or None.

    Every newer checkpoint that fails verification is skipped with a log message naming it
    and the reason.
    """
    for path in reversed(list_checkpoints(root)):
        reason = verify_checkpoint(path)
        if reason is None:
            return path
        log(f"skipping invalid checkpoint {path}: {reason}")
    return None


def saved_step(path) -> int:
    """The optimizer step a checkpoint was written at."""
    return int(json.loads((Path(path) / "state.json").read_text())["step"])


def load_checkpoint(path, *, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler=None, restore_rng: bool = True) -> dict:
    """Restore model, optimizer, scheduler and RNG from `path`; return the saved trainer_state.

    Load order is model, optimizer, scheduler (its state is merged over its current state, so
    callables it skipped on save stay as constructed), then RNG. Raises CheckpointError naming
    the file if the checkpoint does not verify or does not fit the objects given.
    """
    path = Path(path)
    reason = verify_checkpoint(path)
    if reason is not None:
        raise CheckpointError(f"cannot load checkpoint: {reason}")
    state = json.loads((path / STATE).read_text())
    missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path / STATE}: missing keys {missing}")
    _checks.check_header(state, path / STATE)
    if state["format"] > FORMAT:
        raise CheckpointError(f"{path / STATE}: format {state.get('format')} was written by a "
                              f"newer tunewright ({state.get('tunewright_version')}); this one "
                              f"reads format <= {FORMAT}")

    weights = _read_safetensors(path / MODEL)
    partial = state["model"]["partial"]
    try:
        result = model.load_state_dict(weights, strict=not partial)
    except RuntimeError as e:
        raise CheckpointError(f"{path / MODEL}: does not fit the model: {e}") from e
    if result.unexpected_keys:
        raise CheckpointError(f"{path / MODEL}: keys not in the model: {result.unexpected_keys}")

    extra = _read_safetensors(path / EXTRA) if (path / EXTRA).is_file() else {}
    if optimizer is not None:
        if state["optimizer"] is None:
            raise CheckpointError(f"{path / STATE}: the checkpoint holds no optimizer state "
                                  f"(saved with optimizer=None)")
        _checks.check_optimizer_layout(state["optimizer"], path / STATE)
        opt_sd = _decode_optimizer(state["optimizer"], _read_safetensors(path / OPTIMIZER),
                                   path / OPTIMIZER)
        for i, (saved, live) in enumerate(zip(opt_sd["param_groups"], optimizer.param_groups)):
            _checks.check_numbers(saved, {k: v for k, v in live.items() if k != "params"},
                                  f"optimizer.param_groups[{i}]", path / STATE)
        try:
            optimizer.load_state_dict(opt_sd)
        except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as e:
            raise CheckpointError(f"{path / OPTIMIZER}: does not fit the optimizer: {e}") from e
        _checks.check_optimizer_loaded(optimizer, path / OPTIMIZER)
    if scheduler is not None:
        if state["scheduler"] is None:
            raise CheckpointError(f"{path / STATE}: the checkpoint holds no scheduler state "
                                  f"(saved with scheduler=None)")
        merged = scheduler.state_dict()
        saved = _decode(state["scheduler"], extra, path / EXTRA)
        _checks.check_numbers(saved, merged, "scheduler", path / STATE)
        merged.update(saved)
        try:
            scheduler.load_state_dict(merged)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path / STATE}: 'scheduler' does not fit the scheduler: {e}") from e
    if restore_rng:
        try:
            _rng.restore_rng(_read_safetensors(path / RNG), state["rng"])
        except (ValueError, KeyError, TypeError, IndexError, OverflowError, RuntimeError) as e:
            raise CheckpointError(f"{path / RNG} with {path / STATE} 'rng': not a random generator state "
                                  f"({type(e).__name__}: {e})") from e
    return _decode(state["trainer_state"], extra, path / EXTRA)


def read_record(path) -> dict | None:
    """The run record saved with checkpoint `path` (see save_checkpoint), or None for a checkpoint
    written before records existed."""
    return json.loads((Path(path) / STATE).read_text()).get("record")


def prune_checkpoints(root, keep_last: int) -> list[Path]:
    """Delete checkpoints older than the `keep_last`-th newest valid one; return what was deleted.

    Only valid checkpoints count toward `keep_last`. Invalid ones newer than that are kept (for
    inspection; they age out). If fewer than `keep_last` valid ones exist, nothing is deleted,
    so the last valid checkpoint is never removed.
    """
    checkpoints = list_checkpoints(root)
    valid = 0
    for i in range(len(checkpoints) - 1, -1, -1):
        if _verify_cached(checkpoints[i]) is None:
            valid += 1
            if valid == keep_last:
                doomed = checkpoints[:i]
                for path in doomed:
                    shutil.rmtree(path, ignore_errors=True)
                    _verified.pop(str(path), None)
                return doomed
    return []


# ---------------------------------------------------------------- model state

def _check_model_state(state: dict, where: str) -> None:
    for key, t in state.items():
        if not isinstance(t, Tensor):
            raise CheckpointError(f"not saving {where}: model state {key!r} is a "
                                  f"{type(t).__name__}, not a tensor (extra state is not supported)")
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"not saving {where}: parameter {key!r} has {bad} non-finite "
                                  f"value(s) (NaN/inf) out of {t.numel()}; nothing was written")


# ---------------------------------------------------------------- safetensors files

def _write_safetensors(path: Path, tensors: dict[str, Tensor]) -> None:
    """Save to CPU safetensors, writing tensors that share storage once.

    safetensors refuses tensors that share memory. The same view under two names (tied
    weights) is written once and recorded as an alias; a different view of an already
    written storage is cloned.
    """
    out: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    views: dict[tuple, str] = {}
    storages: set[tuple] = set()
    for name, t in tensors.items():
        t = t.detach()
        if t.numel() and t.device.type != "meta":
            ptr = (t.device, t.untyped_storage().data_ptr())
            view = (*ptr, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
            if view in views:
                aliases[name] = views[view]
                continue
            views[view] = name
            if ptr in storages:
                t = t.clone()
            storages.add(ptr)
        out[name] = t.to("cpu").contiguous()
    save_file(out, str(path), metadata={"format": "pt", _ALIASES: json.dumps(aliases)})
    _fsync_file(path)


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            aliases = json.loads((f.metadata() or {}).get(_ALIASES, "{}"))
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    if not isinstance(aliases, dict) or not all(isinstance(t, str) and t in tensors for t in aliases.values()):
        raise CheckpointError(f"{path}: metadata {_ALIASES!r} must map names to tensors of the file, got {aliases!r}")
    for alias, target in aliases.items():
        tensors[alias] = tensors[target]  # same object: tied parameters get the same values
    return tensors


# ---------------------------------------------------------------- files, hashing, cleanup

def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:  # writable: Windows cannot fsync a read-only handle
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename or new entries in `path` durable. Windows cannot open directories."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fingerprint(path: Path) -> tuple:
    entries = []
    for p in sorted(path.iterdir()):
        s = p.stat()
        entries.append((p.name, s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino))
    return tuple(entries)


def _verify_cached(path: Path) -> str | None:
    """verify_checkpoint, skipped when no file changed since it last passed in this session."""
    key = str(path)
    try:
        fp = _fingerprint(path)
    except OSError as e:
        return f"{path}: {e}"
    if _verified.get(key) == fp:
        return None
    reason = verify_checkpoint(path)
    if reason is None:
        _verified[key] = fp
    else:
        _verified.pop(key, None)
    return reason


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: not a valid pid at all
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _remove_stale_tmp(root: Path) -> None:
    """Delete `.tmp-*` folders left by a crash: this process's own, or a dead process's."""
    for p in root.glob(".tmp-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue  # another live process is writing it
        shutil.rmtree(p, ignore_errors=True)
