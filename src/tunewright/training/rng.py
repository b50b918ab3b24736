"""Capture, restore and seed every random number generator a training run draws from.

Exact resume needs the generators to continue where they stopped: dropout masks, data
augmentation and any `random.shuffle` in user code must draw the same numbers after a
restart as they would have without one.

`capture_rng()` splits the state in two, the way `training/checkpoint.py` stores it:

- tensors (-> rng.safetensors): `torch.cpu` (uint8, 5056 bytes for the Mersenne Twister),
  `torch.cuda.<i>` for every CUDA device, `torch.mps` when MPS is available;
- JSON (-> state.json): Python's `random.getstate()` and NumPy's legacy global
  `np.random.get_state()`, as plain lists of ints.

Generators you create yourself (`torch.Generator`, `np.random.default_rng`) are not global
and are not captured: derive them from (seed, epoch, step), as `epoch_batches` does.
"""
from __future__ import annotations

import os
import random
import warnings

import numpy as np
import torch
from torch import Tensor

__all__ = ["capture_rng", "restore_rng", "seed_everything"]


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def capture_rng() -> tuple[dict[str, Tensor], dict]:
    """Return `(tensors, json_state)` holding the state of every global generator.

    `tensors` holds uint8 CPU tensors; `json_state` holds only lists, ints, floats and None.
    """
    version, internal, gauss_next = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    json_state = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": np_name,
            "keys": np_keys.tolist(),  # (624,) uint32
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "cuda_devices": 0,
        "mps": False,
    }
    tensors = {"torch.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states = torch.cuda.get_rng_state_all()
        for i, state in enumerate(states):
            tensors[f"torch.cuda.{i}"] = state.cpu()
        json_state["cuda_devices"] = len(states)
    if _mps_available():
        tensors["torch.mps"] = torch.mps.get_rng_state().cpu()
        json_state["mps"] = True
    return tensors, json_state


def restore_rng(tensors: dict[str, Tensor], json_state: dict) -> None:
    """Put every global generator back to the state `capture_rng()` returned.

    Device generators that were captured but are not present now (a GPU run resumed on CPU,
    or on fewer GPUs) are skipped with a warning: that resume cannot be bit-exact anyway.
    """
    py = json_state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npy = json_state["numpy"]
    np.random.set_state((npy["bit_generator"], np.asarray(npy["keys"], dtype=np.uint32),
                         npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(tensors["torch.cpu"].to(dtype=torch.uint8, device="cpu"))

    n_saved = int(json_state.get("cuda_devices", 0))
    if n_saved:
        n_now = torch.cuda.device_count() if torch.cuda.is_available() else 0
        for i in range(min(n_saved, n_now)):
            torch.cuda.set_rng_state(tensors[f"torch.cuda.{i}"].to(torch.uint8), device=i)
        if n_now != n_saved:
            warnings.warn(f"RNG state was captured on {n_saved} CUDA device(s) but {n_now} are "
                          f"available now; restored {min(n_saved, n_now)}. Resume is not bit-exact.",
                          stacklevel=2)
    if json_state.get("mps"):
        if _mps_available():
            torch.mps.set_rng_state(tensors["torch.mps"].to(torch.uint8))
        else:
            warnings.warn("RNG state was captured on MPS, which is not available now; "
                          "its generator was not restored.", stacklevel=2)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) with `seed`.

    With `deterministic=True`, also `torch.use_deterministic_algorithms(True, warn_only=True)`:
    ops without a deterministic kernel warn instead of failing, so a CPU run never breaks
    because of it. On CUDA it also turns cuDNN autotuning off and sets
    `CUBLAS_WORKSPACE_CONFIG` (if unset), which cuBLAS needs to be deterministic; that variable
    only takes effect if it is set before the first cuBLAS call, so seed early.
    With `deterministic=False` these switches are turned back off.

    Deterministic mode also fills every newly allocated tensor with NaN by default
    (`torch.utils.deterministic.fill_uninitialized_memory`), a guard against kernels that read
    memory they never wrote. Correct kernels don't, and the fill cost 18% of an EfficientNet
    training step on this CPU (`aten::fill_` in the profile), so it is off; exact resume is
    still checked bit for bit by tests/e2e/test_resume_exact.py.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        # NumPy's legacy seed takes 0 <= seed < 2**32; the others accept that range too.
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic and torch.backends.cudnn.benchmark
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
