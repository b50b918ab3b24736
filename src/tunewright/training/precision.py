"""Pick the device and the autocast precision from what the hardware actually does fast.

CPU flags are not enough: this project's CI machines report AMX/avx512_bf16 and
`torch.ops.mkldnn._is_mkldnn_bf16_supported()` is True, yet bf16 autocast made a LoRA step 22x
slower there. So on CPU, `precision: auto` times one small MLP training step in fp32 and under bf16
autocast, and uses bf16 only if it is clearly faster. The verdict is cached per CPU model and torch
version in the user's cache folder, so the probe (under a second) runs once per machine.
GPUs: bf16 where `torch.cuda.is_bf16_supported()`, otherwise fp16 with a GradScaler.

On CUDA the autocast context also keeps PyTorch's scaled-dot-product attention off its cuDNN
backend (`train.cudnn_attention: false`, the default). cuDNN builds an execution graph for every
new sequence length, a few hundred ms each, and dynamically padded batches bring a new length at
nearly every step: on an H100, MiniLM LoRA in bf16 ran 157 ms a step with it, where the Trainer's
fp32 job (no cuDNN) ran 30. Flash and memory-efficient attention need no per-shape build.
"""
from __future__ import annotations

import json
import platform
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cache import cache_dir
from ..errors import ConfigError
from ..machine import cpu_model


@dataclass
class Precision:
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None means plain fp32
    cudnn_attention: bool = False  # CUDA: may SDPA pick its cuDNN backend (a graph build per new shape)?

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        """Autocast to `dtype`, and on CUDA the attention backends to use: for a forward pass.

        The backward pass needs neither: autograd replays the kernels the forward chose.
        """
        stack = ExitStack()
        if self.dtype is not None:
            stack.enter_context(torch.autocast(self.device.type, dtype=self.dtype))
        if self.device.type == "cuda" and not self.cudnn_attention:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            stack.enter_context(sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                             SDPBackend.MATH]))
        return stack

    def grad_scaler(self):
        """fp16 needs loss scaling; bf16 and fp32 do not."""
        if self.dtype is torch.float16 and self.device.type == "cuda":
            return torch.amp.GradScaler("cuda")
        return None


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} asked for, but CUDA is not available here.")
    return dev


def _time_step(model, x, use_bf16: bool, reps: int = 3) -> float:
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            loss = model(x).float().pow(2).mean()
        loss.backward()
    step()  # warm up kernels
    t = time.perf_counter()
    for _ in range(reps):
        step()
    return (time.perf_counter() - t) / reps


def cpu_bf16_is_fast() -> bool:
    """Measure once per machine whether bf16 autocast beats fp32 for a training step (cached)."""
    key = f"{platform.processor() or platform.machine()}|{cpu_model()}|torch{torch.__version__}"
    path = cache_dir() / "precision.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return bool(known[key])
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 256),
                                torch.nn.LayerNorm(256))
    x = torch.randn(32, 256, generator=g)
    fp32, bf16 = _time_step(model, x, False), _time_step(model, x, True)
    fast = bf16 < 0.75 * fp32  # bf16 must win clearly to be worth its rounding error
    known[key] = fast
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1))
    except OSError:
        pass
    return fast


def resolve_precision(precision: str, device: torch.device, cudnn_attention: bool = False) -> Precision:
    device = torch.device(device)
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        if device.type == "cpu" and dtype is torch.float16:
            raise ConfigError("train.precision: 'fp16' autocast is for GPUs; on CPU use fp32 or bf16.")
    elif precision == "fp32":
        dtype = None
    elif device.type == "cuda":  # auto
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16 if device.type == "cpu" and cpu_bf16_is_fast() else None
    return Precision(device, dtype, cudnn_attention)
